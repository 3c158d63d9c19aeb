"""CDK stacks and constructs for Flowdeck on AWS: data, compute, workflows, api."""
