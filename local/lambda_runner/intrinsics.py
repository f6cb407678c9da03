"""CloudFormation intrinsic functions, evaluated as far as a local run can.

``INTRINSICS`` maps each supported intrinsic to its resolver function, as aws-sam-cli's IntrinsicResolver does:
those ``template.yaml`` uses (``Ref``, ``Fn::Sub``, ``Fn::If``, ``Fn::Equals``, ``Fn::Not``, ``Fn::GetAtt``,
``Fn::Select``, ``Fn::Split``, ``Fn::GetAZs``) and ``Fn::Join``, ``Fn::FindInMap`` and ``Fn::Base64``, which
``sam local`` resolves as well. Any other intrinsic raises :class:`UnsupportedIntrinsicError` naming it.

What only exists once deployed resolves to a stand-in: the ``Ref`` of a resource is its logical id, and
``Fn::GetAtt`` gives an ARN-shaped string for an ``...Arn`` attribute, else ``<logical id>.<attribute>``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from .sam_model import DEFAULT_ACCOUNT_ID, DEFAULT_STACK_NAME

NO_VALUE = object()  # AWS::NoValue: removes the enclosing key / list item
_SUB_RE = re.compile(r"\$\{([^}]*)\}")


class UnsupportedIntrinsicError(ValueError):
    """The template uses an intrinsic function the local runner does not evaluate."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"intrinsic function {name} is not supported by the local runner "
            f"(supported: {', '.join(sorted(INTRINSICS))})"
        )
        self.name = name


def scalar_str(value: Any) -> str:
    """CloudFormation's string form of a scalar (booleans are lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(scalar_str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def is_intrinsic(value: dict[str, Any]) -> bool:
    return (len(value) == 1 and next(iter(value)) in ("Ref", "Condition")) or any(k.startswith("Fn::") for k in value)


class Resolver:
    """Evaluates the intrinsic functions of one template, with its parameters, mappings and conditions."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        region: str,
        account_id: str = DEFAULT_ACCOUNT_ID,
        stack_name: str = DEFAULT_STACK_NAME,
        parameter_overrides: dict[str, str] | None = None,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.mappings: dict[str, Any] = template.get("Mappings") or {}
        self.conditions: dict[str, Any] = template.get("Conditions") or {}
        self._condition_cache: dict[str, bool] = {}
        self.parameters = _parameter_values(template.get("Parameters") or {}, parameter_overrides or {})
        self.pseudo = _pseudo_parameters(region, account_id, stack_name)

    def resolve(self, node: Any) -> Any:
        """``node`` with every intrinsic evaluated (a top-level ``AWS::NoValue`` is None)."""
        value = self.evaluate(node)
        return None if value is NO_VALUE else value

    def evaluate(self, node: Any) -> Any:
        """Like :meth:`resolve`, but ``AWS::NoValue`` stays :data:`NO_VALUE` so the enclosing key can drop it."""
        if isinstance(node, list):
            return [value for value in map(self.evaluate, node) if value is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key in INTRINSICS:
                return INTRINSICS[key](self, arg)
            if key.startswith("Fn::"):
                raise UnsupportedIntrinsicError(key)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
        return {key: value for key, item in node.items() if (value := self.evaluate(item)) is not NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            self._condition_cache[name] = False  # guards against cycles
            self._condition_cache[name] = self.truthy(self.conditions.get(name, False))
        return self._condition_cache[name]

    def truthy(self, node: Any) -> bool:
        if isinstance(node, str):
            return node.lower() == "true"
        return bool(self.resolve(node))

    def ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            return str(name)
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        # A resource: locally its logical id is the most useful (and harmless) stand-in.
        return name

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute.endswith("Arn"):
            rtype = str((self.resources.get(logical_id) or {}).get("Type", "")).split("::")
            service = rtype[1].lower() if len(rtype) > 1 else "local"
            return f"arn:aws:{service}:{self.region}:{self.account_id}:{logical_id}"
        return f"{logical_id}.{attribute}"

    def sub(self, template: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                return scalar_str(variables[name])
            if "." in name and name not in self.parameters:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            value = self.ref(name)
            return "" if value is NO_VALUE else scalar_str(value)

        return _SUB_RE.sub(replace, template)


def _parameter_values(specs: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Each parameter's value: its override, else its default, else ""; list types as lists."""
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        spec = spec or {}
        value: Any = overrides[name] if name in overrides else spec.get("Default", "")
        if str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<")) and isinstance(value, str):
            value = [v.strip() for v in value.split(",")] if value else []
        elif not isinstance(value, list):
            value = scalar_str(value)
        values[name] = value
    return values


def _pseudo_parameters(region: str, account_id: str, stack_name: str) -> dict[str, Any]:
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/"
        "00000000-0000-0000-0000-000000000000",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
    }


# ------------------------------------------------------------------------------------ one function per intrinsic
def _ref(r: Resolver, arg: Any) -> Any:
    return r.ref(r.evaluate(arg))


def _if(r: Resolver, arg: Any) -> Any:
    condition, when_true, when_false = arg
    return r.evaluate(when_true if r.condition(condition) else when_false)


def _equals(r: Resolver, arg: Any) -> bool:
    left, right = (r.resolve(v) for v in arg)
    return scalar_str(left) == scalar_str(right)


def _not(r: Resolver, arg: Any) -> bool:
    return not r.truthy(arg[0] if isinstance(arg, list) else arg)


def _sub(r: Resolver, arg: Any) -> str:
    if isinstance(arg, list):
        text, variables = arg[0], r.evaluate(arg[1] if len(arg) > 1 else {})
    else:
        text, variables = arg, {}
    return r.sub(str(r.evaluate(text)), variables or {})


def _get_att(r: Resolver, arg: Any) -> str:
    value = r.evaluate(arg)
    parts = value if isinstance(value, list) else str(value).split(".", 1)
    return r.get_att(str(parts[0]), str(parts[1]) if len(parts) > 1 else "")


def _join(r: Resolver, arg: Any) -> str:
    delimiter, items = r.evaluate(arg)
    return str(delimiter).join(scalar_str(i) for i in (items or []))


def _select(r: Resolver, arg: Any) -> Any:
    index, items = r.evaluate(arg)
    items = items if isinstance(items, list) else [items]
    return items[int(index)] if 0 <= int(index) < len(items) else ""


def _split(r: Resolver, arg: Any) -> list[str]:
    delimiter, text = r.evaluate(arg)
    return str(text).split(str(delimiter))


def _find_in_map(r: Resolver, arg: Any) -> Any:
    value = r.evaluate(arg)
    map_name, top, second = value[:3]
    try:
        return r.evaluate(r.mappings[map_name][top][second])
    except (KeyError, TypeError):
        return value[3]["DefaultValue"] if len(value) > 3 and isinstance(value[3], dict) else ""


def _base64(r: Resolver, arg: Any) -> str:
    return base64.b64encode(scalar_str(r.evaluate(arg)).encode()).decode()


def _get_azs(r: Resolver, arg: Any) -> list[str]:
    region = r.evaluate(arg) or r.region
    return [f"{region}{suffix}" for suffix in "abc"]


INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": _ref,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": _not,
    "Fn::Sub": _sub,
    "Fn::GetAtt": _get_att,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::FindInMap": _find_in_map,
    "Fn::Base64": _base64,
    "Fn::GetAZs": _get_azs,
}
