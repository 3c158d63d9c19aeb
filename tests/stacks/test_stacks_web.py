"""FlowdeckWeb and FlowdeckWebConfig: private bucket behind CloudFront (OAC), security headers, Cognito
sign-in, an invoke-only role for signed-in people, config.json, and CORS for the dashboard's origin only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Stack, assertions
from aws_cdk.assertions import Match
from stack_helpers import Synthesized, as_list, resources_of

from flowdeck.constants import ENV_DASHBOARD_URL, ENV_USER_POOL_ID
from stacks.app_builder import API_STACK, LIVE_STACK, WEB_CONFIG_STACK, WEB_STACK
from stacks.web import WEB_DIR, DashboardConfig, import_map_packages, inline_script_hashes


def _web(templates: dict[str, assertions.Template]) -> assertions.Template:
    return templates[WEB_STACK]


def _only(template: assertions.Template, resource_type: str) -> dict[str, Any]:
    [resource] = resources_of(template, resource_type).values()
    return dict(resource["Properties"])


def _text(value: Any) -> str:
    """A template value (string or Fn::Join of strings and references) as text, references by name."""
    return json.dumps(value)


def test_files_bucket_is_private_encrypted_tls_only_and_logged(
    templates: dict[str, assertions.Template],
) -> None:
    web = _web(templates)
    buckets = resources_of(web, "AWS::S3::Bucket")
    files = next(b["Properties"] for k, b in buckets.items() if k.startswith("HostingFiles"))
    assert files["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert files["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert "LoggingConfiguration" in files
    policies = [p["Properties"] for p in resources_of(web, "AWS::S3::BucketPolicy").values()]
    statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    # Only CloudFront, for this distribution, may read the files (origin access control).
    readers = [s for s in statements if s["Effect"] == "Allow" and "s3:GetObject" in as_list(s["Action"])]
    assert readers
    for reader in readers:
        assert reader["Principal"] == {"Service": "cloudfront.amazonaws.com"}
        assert "AWS:SourceArn" in reader["Condition"]["StringEquals"]


def test_distribution_uses_origin_access_control_and_https_only(
    templates: dict[str, assertions.Template],
) -> None:
    web = _web(templates)
    oac = _only(web, "AWS::CloudFront::OriginAccessControl")["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    config = _only(web, "AWS::CloudFront::Distribution")["DistributionConfig"]
    [origin] = config["Origins"]
    assert "OriginAccessControlId" in origin
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    assert "ResponseHeadersPolicyId" in behavior
    assert config["DefaultRootObject"] == "index.html"
    web.has_output("DashboardUrl", {"Value": Match.object_like({"Fn::Join": Match.any_value()})})


def test_security_headers_allow_only_self_the_apis_and_cognito(
    templates: dict[str, assertions.Template],
) -> None:
    headers = _only(_web(templates), "AWS::CloudFront::ResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]
    security = headers["SecurityHeadersConfig"]
    csp = _text(security["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    for directive in (
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "style-src 'self'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # The import map is the page's one inline script: allowed by its hash.
    [import_map_hash] = inline_script_hashes((WEB_DIR / "index.html").read_text())
    assert f"script-src 'self' {import_map_hash};" in csp
    connect = csp.split("connect-src ")[1].split(";")[0]
    assert "https://*.execute-api." in connect and "wss://*.execute-api." in connect
    assert "https://cognito-identity." in connect and ".amazoncognito.com" in connect
    assert " * " not in f" {connect} " and "https://*.amazonaws.com" not in connect
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31_536_000
    assert security["StrictTransportSecurity"]["IncludeSubdomains"] is True
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    assert security["ContentTypeOptions"] == {"Override": True}


def test_only_the_packages_the_import_map_names_are_uploaded(synthesized: Synthesized) -> None:
    index_html = (WEB_DIR / "index.html").read_text()
    assert import_map_packages(index_html) == ["@dagrejs", "ansi_up", "aws4fetch", "htm", "preact"]
    template = assertions.Template.from_stack(synthesized.stacks[WEB_STACK])
    [source_zip] = _only(template, "Custom::CDKBucketDeployment")["SourceObjectKeys"]
    staged = Path(synthesized.assembly.directory) / f"asset.{source_zip.removesuffix('.zip')}"
    uploaded = {path.name for path in [*staged.iterdir(), *(staged / "node_modules").iterdir()]}
    assert {"index.html", "app.js", "api.js", "@dagrejs", "preact", "htm", "ansi_up", "aws4fetch"} <= uploaded
    assert not {"tests", "package.json", "package-lock.json", "axe-core", ".bin", "config.json"} & uploaded


def test_user_pool_is_invite_only_with_verified_email_and_strong_passwords(
    templates: dict[str, assertions.Template],
) -> None:
    pool = _only(_web(templates), "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["AutoVerifiedAttributes"] == ["email"]
    passwords = pool["Policies"]["PasswordPolicy"]
    assert passwords["MinimumLength"] >= 12
    assert all(
        passwords[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols")
    )
    assert pool["MfaConfiguration"] == "OPTIONAL"


def test_page_client_is_public_code_flow_back_to_the_dashboard(
    templates: dict[str, assertions.Template],
) -> None:
    web = _web(templates)
    client = _only(web, "AWS::Cognito::UserPoolClient")
    assert client.get("GenerateSecret", False) is False
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert set(client["AllowedOAuthScopes"]) == {"openid", "email"}
    callback = _text(client["CallbackURLs"])
    assert "https://" in callback and "HostingDistribution" in callback
    domain = _only(web, "AWS::Cognito::UserPoolDomain")
    assert domain["ManagedLoginVersion"] == 2
    assert _only(web, "AWS::Cognito::ManagedLoginBranding")["UseCognitoProvidedValues"] is True


def test_identity_pool_admits_signed_in_members_only(templates: dict[str, assertions.Template]) -> None:
    web = _web(templates)
    pool = _only(web, "AWS::Cognito::IdentityPool")
    assert pool["AllowUnauthenticatedIdentities"] is False
    [provider] = pool["CognitoIdentityProviders"]
    assert "SignInUsersDashboard" in _text(provider["ClientId"])
    roles = {
        k: r["Properties"] for k, r in resources_of(web, "AWS::IAM::Role").items() if k.startswith("SignIn")
    }
    authenticated = next(r for k, r in roles.items() if "Authenticated" in k and "Unauth" not in k)
    [trust] = authenticated["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"] == {"Federated": "cognito-identity.amazonaws.com"}
    assert trust["Condition"]["ForAnyValue:StringLike"] == {
        "cognito-identity.amazonaws.com:amr": "authenticated"
    }
    # Neither role carries a policy here: signed-in members get theirs from FlowdeckWebConfig, guests none.
    for role in roles.values():
        assert "ManagedPolicyArns" not in role and "Policies" not in role
    for policy in resources_of(web, "AWS::IAM::Policy").values():
        assert "SignIn" not in _text(policy["Properties"]["Roles"])


def test_signed_in_role_may_only_invoke_the_two_apis(templates: dict[str, assertions.Template]) -> None:
    config = templates[WEB_CONFIG_STACK]
    invoke = [
        p["Properties"]
        for k, p in resources_of(config, "AWS::IAM::Policy").items()
        if k.startswith("ConfigInvoke")
    ]
    [policy] = invoke
    assert "SignInIdentitiesAuthenticatedRole" in _text(policy["Roles"])
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    resources = [_text(r) for r in statement["Resource"]]
    assert len(resources) == 3
    rest, connect, subscribe = resources
    assert "RunsApi" in rest and rest.endswith('"/*/*"]]}')
    assert "LiveLogsApi" in connect and connect.endswith('"/live/$connect"]]}')
    assert "LiveLogsApi" in subscribe and subscribe.endswith('"/live/subscribe"]]}')


def test_config_json_names_both_apis_the_region_and_the_sign_in(synthesized: Synthesized) -> None:
    config = synthesized.app.node.find_child(WEB_CONFIG_STACK).node.find_child("Config")
    assert isinstance(config, DashboardConfig)
    settings = Stack.of(config).resolve(config.settings)
    assert settings["mode"] == "cognito"
    assert set(settings) == {
        "mode",
        "apiUrl",
        "websocketUrl",
        "region",
        "userPoolId",
        "clientId",
        "identityPoolId",
        "cognitoDomain",
    }
    assert "RunsApi" in _text(settings["apiUrl"]) and '"/", {"Fn::ImportValue"' in _text(settings["apiUrl"])
    assert _text(settings["websocketUrl"]).startswith('{"Fn::Join": ["", ["wss://"')
    for key, fragment in (
        ("userPoolId", "SignInUsers"),
        ("clientId", "SignInUsersDashboard"),
        ("identityPoolId", "SignInIdentities"),
        ("cognitoDomain", "SignInUsersLogin"),
    ):
        assert fragment in _text(settings[key]), key
    deployment = _only(synthesized_template(synthesized), "Custom::CDKBucketDeployment")
    assert deployment["Prune"] is False
    assert deployment["DistributionPaths"] == ["/config.json"]
    assert "no-cache" in _text(deployment["SystemMetadata"])


def synthesized_template(synthesized: Synthesized) -> assertions.Template:
    return assertions.Template.from_stack(synthesized.stacks[WEB_CONFIG_STACK])


def test_rest_api_admits_the_dashboard_origin_only(templates: dict[str, assertions.Template]) -> None:
    api = templates[API_STACK]
    options = [
        m["Properties"]
        for m in resources_of(api, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert len(options) == 2  # the root and {proxy+}
    for method in options:
        assert method["AuthorizationType"] == "NONE"
        headers = method["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        origin = _text(headers["method.response.header.Access-Control-Allow-Origin"])
        assert "HostingDistribution" in origin and "*" not in origin
        assert "X-Amz-Security-Token" in headers["method.response.header.Access-Control-Allow-Headers"]
    # Every other method still takes SigV4 (or its own signature: hooks and approval links).
    for method in resources_of(api, "AWS::ApiGateway::Method").values():
        if method["Properties"]["HttpMethod"] == "ANY":
            assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in resources_of(api, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        origin = _text(
            responses[kind]["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        )
        assert origin.startswith('{"Fn::Join": ["", ["\'https://"') and "HostingDistribution" in origin


def test_api_and_websocket_handlers_read_members_of_that_user_pool_only(
    templates: dict[str, assertions.Template],
) -> None:
    for stack, function_fragment in ((API_STACK, "RunsApiHandlerFunction"), (LIVE_STACK, "WsFunction")):
        template = templates[stack]
        [function] = [
            f for k, f in resources_of(template, "AWS::Lambda::Function").items() if function_fragment in k
        ]
        variables = function["Properties"]["Environment"]["Variables"]
        assert "SignInUsers" in _text(variables[ENV_USER_POOL_ID])
        assert "HostingDistribution" in _text(variables[ENV_DASHBOARD_URL])
        cognito = [
            s
            for p in resources_of(template, "AWS::IAM::Policy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if any(str(a).startswith("cognito-idp:") for a in as_list(s["Action"]))
        ]
        assert len(cognito) == 1, stack
        assert cognito[0]["Action"] == "cognito-idp:AdminGetUser"
        assert "SignInUsers" in _text(cognito[0]["Resource"]) and "*" not in _text(cognito[0]["Resource"])
