"""logpipe's shared package: everything the Lambda functions have in common, shipped as one SAM layer."""
