"""The process environment of a function instance, as Lambda and `sam local` set it."""

from __future__ import annotations

from .sam_model import DEFAULT_ACCOUNT_ID, FunctionSpec


def function_environment(
    spec: FunctionSpec,
    *,
    base_env: dict[str, str],
    region: str,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> dict[str, str]:
    """The process environment of a worker of ``spec``.

    The runner's own environment is the base (PATH, HOME ...). Template variables are added, but a variable that
    is already set in the runner's environment wins (like ``sam local invoke --env-vars``), so a local run can
    point at locally started services. Then the variables the Lambda runtime itself sets.
    """
    env = dict(base_env)
    for key, value in spec.environment.items():
        if key not in base_env:
            env[key] = value
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": base_env.get("AWS_DEFAULT_REGION", region),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
            "_HANDLER": spec.handler,
        }
    )
    # Like `sam local`: lets Powertools know it is not on AWS (e.g. the Tracer then stays silent).
    env.setdefault("AWS_SAM_LOCAL", "true")
    return env
