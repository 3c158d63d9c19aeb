"""The dashboard on AWS: web/ behind CloudFront, Cognito sign-in, and what the APIs need to admit it."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any, Final

from aws_cdk import ArnFormat, Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_cognito_identitypool as identitypool
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

from flowdeck.constants import CORS_ALLOW_HEADERS, ENV_DASHBOARD_URL, ENV_USER_POOL_ID
from stacks.assets import REPO_ROOT

WEB_DIR: Final = REPO_ROOT / "web"
CONFIG_FILE: Final = "config.json"
# The page reads this to pick its sign-in (the local stack serves "local").
COGNITO_MODE: Final = "cognito"
# `cdk deploy -c web_domain_prefix=...`: the managed login domain's prefix (unique per region).
DOMAIN_PREFIX_CONTEXT: Final = "web_domain_prefix"
# The WebSocket routes the page uses: IAM is checked on `$connect`, the rest are named, not "*".
WEBSOCKET_ROUTES: Final = ("$connect", "subscribe")
HSTS_MAX_AGE: Final = Duration.days(730)


def import_map_packages(index_html: str) -> list[str]:
    """The node_modules packages the page's import map points into (a scope counts as one)."""
    found = set()
    for target in re.findall(r'"\./node_modules/((?:@[^/"]+/)?[^/"]+)/', index_html):
        found.add(target.split("/")[0] if target.startswith("@") else target)
    return sorted(found)


def inline_script_hashes(index_html: str) -> list[str]:
    """CSP sources for the page's inline scripts (the import map), so script-src needs no 'unsafe-inline'."""
    bodies = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", index_html, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies]


def content_security_policy(index_html: str, connect: list[str], sign_in: str) -> str:
    """The page's CSP: its own files and import map, `connect` for its calls, `sign_in` for the login form."""
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {' '.join(inline_script_hashes(index_html))}",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            f"form-action 'self' {sign_in}",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "object-src 'none'",
        ]
    )


def web_source(web_dir: Path = WEB_DIR) -> s3deploy.ISource:
    """web/ as the browser loads it: the page, its modules and styles, and only the pinned packages its
    import map names (no tests, no package files, no local config)."""
    packages = import_map_packages((web_dir / "index.html").read_text())
    keep = [f"!node_modules/{p.split('/')[0]}" for p in packages]
    return s3deploy.Source.asset(
        str(web_dir),
        exclude=["node_modules/*", *keep, "tests", "package.json", "package-lock.json", CONFIG_FILE, ".*"],
    )


class SignIn(Construct):
    """Cognito: a user pool (managed login, no self sign-up), the page's public client (code + PKCE) and
    an identity pool whose signed-in members get the invoke role; nobody unauthenticated gets anything."""

    def __init__(self, scope: Construct, construct_id: str, *, dashboard_url: str) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True, username=False),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
        )
        prefix = self.node.try_get_context(DOMAIN_PREFIX_CONTEXT) or f"flowdeck-{Aws.ACCOUNT_ID}"
        self.domain = self.user_pool.add_domain(
            "Login",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix),
            managed_login_version=cognito.ManagedLoginVersion.NEWER_MANAGED_LOGIN,
        )
        self.client = self.user_pool.add_client(
            "Dashboard",
            generate_secret=False,
            # Sign-in happens on the managed login pages only; PKCE protects the code (public client).
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=False),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=[f"{dashboard_url}/"],
                logout_urls=[f"{dashboard_url}/"],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
        )
        # The newer managed login shows an error page until the client has a style: Cognito's own.
        cognito.CfnManagedLoginBranding(
            self,
            "LoginStyle",
            user_pool_id=self.user_pool.user_pool_id,
            client_id=self.client.user_pool_client_id,
            use_cognito_provided_values=True,
        )
        self.identity_pool = identitypool.IdentityPool(
            self,
            "Identities",
            allow_unauthenticated_identities=False,
            authentication_providers=identitypool.IdentityPoolAuthenticationProviders(
                user_pools=[
                    identitypool.UserPoolAuthenticationProvider(
                        user_pool=self.user_pool, user_pool_client=self.client
                    )
                ]
            ),
        )
        self.login_url = f"https://{self.domain.domain_name}.auth.{Aws.REGION}.amazoncognito.com"
        NagSuppressions.add_resource_suppressions(
            self.user_pool,
            [
                NagPackSuppression(
                    id="AwsSolutions-COG2",
                    reason="MFA is optional by design (issue 15): each person may add a TOTP app; the pool "
                    "has no self sign-up, a 14-character password policy and e-mail-only recovery.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-COG8",
                    reason="Threat protection needs the Plus feature plan (billed per monthly active user); "
                    "members are invited by an administrator only. Turn it on with feature_plan=PLUS.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-COG3",
                    reason="Threat protection needs the Plus feature plan (billed per monthly active user); "
                    "members are invited by an administrator only. Turn it on with feature_plan=PLUS.",
                ),
            ],
        )


class DashboardHosting(Construct):
    """web/ in a private bucket behind CloudFront (origin access control, HTTPS only, security headers)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        )
        NagSuppressions.add_resource_suppressions(
            self.access_logs,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1",
                    reason="This bucket is the server access log target of the dashboard bucket; logging "
                    "it too would log the logs.",
                )
            ],
        )
        self.bucket = s3.Bucket(
            self,
            "Files",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="dashboard/",
        )
        self.headers = self._security_headers()
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Flowdeck dashboard",
            default_root_object="index.html",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers,
                compress=True,
            ),
        )
        self.url = f"https://{self.distribution.distribution_domain_name}"
        self.files = s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=[web_source()],
            destination_bucket=self.bucket,
            distribution=self.distribution,
            # config.json is deployed by FlowdeckWebConfig (it names the APIs): never prune it.
            prune=False,
            memory_limit=512,
        )
        NagSuppressions.add_resource_suppressions(
            self.distribution,
            [
                NagPackSuppression(
                    id="AwsSolutions-CFR1",
                    reason="The dashboard is for a team wherever its members are; sign-in and SigV4 "
                    "guard the data, not the viewer's country.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-CFR2",
                    reason="Static files only (GET/HEAD, no origin compute); the APIs authorize every call. "
                    "A WAF web ACL is left to the operator.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-CFR3",
                    reason="The bucket's server access logs record every object CloudFront fetches; "
                    "CloudFront's legacy viewer logs would need an ACL-enabled bucket.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-CFR4",
                    reason="The default *.cloudfront.net certificate: CloudFront then allows TLSv1 only for "
                    "viewers that offer nothing newer; a custom domain and certificate (TLSv1.2_2021) "
                    "is left to the operator.",
                ),
            ],
        )

    def _security_headers(self) -> cloudfront.ResponseHeadersPolicy:
        index_html = (WEB_DIR / "index.html").read_text()
        region = Aws.REGION
        # The API ids are not known here (the APIs admit this origin for CORS, so they deploy after):
        # connect-src names execute-api of this region only, and Cognito's two endpoints.
        connect = [
            "'self'",
            f"https://*.execute-api.{region}.amazonaws.com",
            f"wss://*.execute-api.{region}.amazonaws.com",
            f"https://cognito-identity.{region}.amazonaws.com",
            f"https://*.auth.{region}.amazoncognito.com",
            # Artifact downloads: the API answers a presigned S3 URL the page opens.
            f"https://*.s3.{region}.amazonaws.com",
            "https://*.s3.amazonaws.com",
        ]
        csp = content_security_policy(index_html, connect, f"https://*.auth.{region}.amazoncognito.com")
        return cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Flowdeck dashboard: CSP, HSTS, no framing",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=csp, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=HSTS_MAX_AGE, include_subdomains=True, preload=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
                    override=True,
                ),
            ),
        )


class WebStack(Stack):
    """FlowdeckWeb: the dashboard's hosting and sign-in (deployed before the APIs, which admit it)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(
            scope, construct_id, description="Flowdeck dashboard: CloudFront, S3 and Cognito sign-in"
        )
        self.hosting = DashboardHosting(self, "Hosting")
        self.url = self.hosting.url
        self.sign_in = SignIn(self, "SignIn", dashboard_url=self.url)
        CfnOutput(self, "DashboardUrl", value=self.url, description="Open this to sign in to Flowdeck")
        CfnOutput(self, "UserPoolId", value=self.sign_in.user_pool.user_pool_id)
        _suppress_bucket_deployment(self)


class DashboardConfig(Construct):
    """config.json beside the files (where the APIs are, how to sign in) and the invoke grant on both APIs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        web: WebStack,
        rest_api: apigw.RestApi,
        websocket_api: apigwv2.WebSocketApi,
        websocket_stage: apigwv2.WebSocketStage,
    ) -> None:
        super().__init__(scope, construct_id)
        sign_in = web.sign_in
        self.settings: dict[str, Any] = {
            "mode": COGNITO_MODE,
            "apiUrl": f"https://{rest_api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/"
            f"{rest_api.deployment_stage.stage_name}",
            "websocketUrl": websocket_stage.url,
            "region": Aws.REGION,
            "userPoolId": sign_in.user_pool.user_pool_id,
            "clientId": sign_in.client.user_pool_client_id,
            "identityPoolId": sign_in.identity_pool.identity_pool_id,
            "cognitoDomain": sign_in.login_url,
        }
        s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=[s3deploy.Source.json_data(CONFIG_FILE, self.settings)],
            destination_bucket=web.hosting.bucket,
            distribution=web.hosting.distribution,
            distribution_paths=[f"/{CONFIG_FILE}"],
            cache_control=[s3deploy.CacheControl.no_cache()],
            prune=False,
        )
        stack = Stack.of(self)
        self.invoke_policy = iam.Policy(
            self,
            "InvokeApis",
            statements=[
                iam.PolicyStatement(
                    actions=["execute-api:Invoke"],
                    resources=[
                        rest_api.arn_for_execute_api(stage=rest_api.deployment_stage.stage_name),
                        *(
                            stack.format_arn(
                                service="execute-api",
                                resource=websocket_api.api_id,
                                resource_name=f"{websocket_stage.stage_name}/{route}",
                                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                            )
                            for route in WEBSOCKET_ROUTES
                        ),
                    ],
                )
            ],
        )
        self.invoke_policy.attach_to_role(sign_in.identity_pool.authenticated_role)
        NagSuppressions.add_resource_suppressions(
            self.invoke_policy,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="execute-api:Invoke on this REST API's stage, every method and path (*/*): the "
                    "page calls all of SPEC §3, and the API decides per person what each may do.",
                    # The REST API's id and stage, by reference (in-stack) or by export (cross-stack).
                    applies_to=[
                        RegexAppliesTo(
                            regex=r"/^Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
                            r"<AWS::AccountId>:[^/]*RunsApi[^/]*\/[^/]*Stagev1[^/]*\/\*\/\*$/"
                        )
                    ],
                )
            ],
        )


class WebConfigStack(Stack):
    """FlowdeckWebConfig: what names the APIs (config.json, the invoke grant), deployed after them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        web: WebStack,
        rest_api: apigw.RestApi,
        websocket_api: apigwv2.WebSocketApi,
        websocket_stage: apigwv2.WebSocketStage,
    ) -> None:
        super().__init__(scope, construct_id, description="Flowdeck dashboard: config.json and API access")
        self.config = DashboardConfig(
            self,
            "Config",
            web=web,
            rest_api=rest_api,
            websocket_api=websocket_api,
            websocket_stage=websocket_stage,
        )
        _suppress_bucket_deployment(self)


def admit_dashboard(
    *,
    web: WebStack,
    rest_api: apigw.RestApi,
    api_handlers: list[lambda_.Function],
) -> None:
    """CORS on the REST API for the dashboard's origin only (preflight and API Gateway's own 4xx/5xx), and
    the handlers told the origin and the user pool, which they may read members of (AdminGetUser)."""
    origin = web.url
    for resource in (rest_api.root, rest_api.root.get_resource("{proxy+}")):
        if resource is None:
            continue
        preflight = resource.add_cors_preflight(
            allow_origins=[origin],
            allow_headers=list(CORS_ALLOW_HEADERS),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            max_age=Duration.hours(1),
        )
        NagSuppressions.add_resource_suppressions(
            preflight,
            [
                NagPackSuppression(
                    id="AwsSolutions-APIG4",
                    reason="CORS preflight (OPTIONS, a mock integration): browsers send it without "
                    "credentials; it answers only which origin, methods and headers may follow.",
                )
            ],
        )
    # An IAM 403 or a throttling 429 comes from API Gateway, not the handler: it too must name the origin,
    # or the browser reports a CORS error instead of the answer.
    for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
        rest_api.add_gateway_response(
            f"Cors{response_type.response_type}",
            type=response_type,
            response_headers={
                "Access-Control-Allow-Origin": f"'{origin}'",
                "Vary": "'Origin'",
            },
        )
    for function in api_handlers:
        function.add_environment(ENV_USER_POOL_ID, web.sign_in.user_pool.user_pool_id)
        function.add_environment(ENV_DASHBOARD_URL, origin)
        web.sign_in.user_pool.grant(function, "cognito-idp:AdminGetUser")


def _suppress_bucket_deployment(stack: Stack) -> None:
    """cdk-nag findings on the BucketDeployment singleton CDK builds (its handler and role are CDK's)."""
    NagSuppressions.add_stack_suppressions(
        stack,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM4",
                reason="CDK's BucketDeployment handler (copies web/ into the bucket at deploy time) uses "
                "AWSLambdaBasicExecutionRole for its own logs; CDK owns that construct.",
                applies_to=[
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
                ],
            ),
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="CDK's BucketDeployment grants read on its asset bucket's objects and write on the "
                "dashboard bucket's objects (<bucket>/*), and CloudFront invalidation; scoped to those.",
                applies_to=[
                    "Action::s3:GetBucket*",
                    "Action::s3:GetObject*",
                    "Action::s3:List*",
                    "Action::s3:Abort*",
                    "Action::s3:DeleteObject*",
                    "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
                    # The dashboard bucket's objects, in-stack or through FlowdeckWeb's export.
                    RegexAppliesTo(
                        regex=r"/^Resource::(<HostingFiles\w+\.Arn>|FlowdeckWeb:ExportsOutputFnGetAttHostingFiles\w+)\/\*$/"
                    ),
                    # cloudfront:CreateInvalidation takes no resource-level permissions.
                    "Resource::*",
                ],
            ),
            NagPackSuppression(
                id="AwsSolutions-L1",
                reason="CDK's BucketDeployment handler: CDK pins its runtime and upgrades it with "
                "aws-cdk-lib.",
            ),
        ],
    )
