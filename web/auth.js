// Sign-in on AWS ("cognito" mode of config.json): the managed login with PKCE, the identity pool's
// temporary credentials, and SigV4 signing (aws4fetch) of REST calls and the WebSocket handshake.
//
// Interface (used by api.js only):
//   loadConfig() -> Promise<config>   config.json beside the page; {mode: "local"} when absent
//   startSession(config) -> Promise<boolean>  finishes a sign-in redirect (?code=) or resumes a stored
//     one; false when the browser was sent to the sign-in page
//   signedFetch(url, init) -> Promise<Response>   fetch with SigV4 headers (fresh credentials)
//   signedSocketUrl(url) -> Promise<string>        the URL with SigV4 in its query (valid 5 minutes)
//   signedInEmail() -> string | null; signOut()
import { AwsClient } from "aws4fetch";

const SESSION_KEY = "flowdeck.session";
const PKCE_KEY = "flowdeck.pkce";
// Renew this long before the credentials or the id token expire (a request must not race the end).
const RENEW_BEFORE_MS = 5 * 60 * 1000;
const SOCKET_URL_TTL_SECONDS = 300;

let config = null;
let session = null; // {idToken, refreshToken, idTokenExpires, credentials: {..., expires}, identityId}
let renewing = null;

export async function loadConfig() {
  try {
    const response = await fetch("./config.json", { cache: "no-store" });
    if (response.ok) return await response.json();
  } catch {
    // No config.json: the local stack without one, trust the page's origin.
  }
  return { mode: "local" };
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

function randomString() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

function tokenClaims(jwt) {
  const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
}

function redirectUri() {
  return `${globalThis.location.origin}/`;
}

async function redirectToSignIn() {
  const verifier = randomString();
  const state = randomString();
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, hash: globalThis.location.hash }));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const url = new URL(`${config.cognitoDomain}/oauth2/authorize`);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: redirectUri(),
    scope: "openid email",
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  globalThis.location.assign(url.toString());
}

async function tokenRequest(fields) {
  const response = await fetch(`${config.cognitoDomain}/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: config.clientId, ...fields }).toString(),
  });
  if (!response.ok) throw new Error(`sign-in failed: the token endpoint answered ${response.status}`);
  return response.json();
}

async function identityCall(target, body) {
  const endpoint = config.identityEndpoint || `https://cognito-identity.${config.region}.amazonaws.com/`;
  const response = await fetch(endpoint, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": `AWSCognitoIdentityService.${target}`,
    },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`sign-in failed: ${target} answered ${response.status}`);
  return response.json();
}

async function fetchCredentials(idToken, identityId) {
  const logins = { [`cognito-idp.${config.region}.amazonaws.com/${config.userPoolId}`]: idToken };
  const id = identityId || (await identityCall("GetId", { IdentityPoolId: config.identityPoolId, Logins: logins })).IdentityId;
  const { Credentials } = await identityCall("GetCredentialsForIdentity", { IdentityId: id, Logins: logins });
  return {
    identityId: id,
    credentials: {
      accessKeyId: Credentials.AccessKeyId,
      secretAccessKey: Credentials.SecretKey,
      sessionToken: Credentials.SessionToken,
      // Expiration is epoch seconds.
      expires: Number(Credentials.Expiration) * 1000,
    },
  };
}

async function adoptTokens(tokens, previous = null) {
  const idToken = tokens.id_token;
  const refreshToken = tokens.refresh_token || previous?.refreshToken;
  const { identityId, credentials } = await fetchCredentials(idToken, previous?.identityId);
  session = {
    idToken,
    refreshToken,
    idTokenExpires: tokenClaims(idToken).exp * 1000,
    identityId,
    credentials,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

async function finishRedirect(params) {
  const stored = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  if (!stored || stored.state !== params.get("state")) throw new Error("sign-in failed: the answer does not match this page's request");
  const tokens = await tokenRequest({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    code_verifier: stored.verifier,
  });
  await adoptTokens(tokens);
  // Drop ?code=&state= from the address bar; keep the view the person asked for.
  globalThis.history.replaceState(null, "", `${globalThis.location.pathname}${stored.hash || ""}`);
}

export async function startSession(loaded) {
  config = loaded;
  const params = new URLSearchParams(globalThis.location.search);
  if (params.has("code")) {
    await finishRedirect(params);
    return true;
  }
  session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  if (session) return true;
  await redirectToSignIn();
  return false;
}

async function renew() {
  const now = Date.now();
  if (session.idTokenExpires - now < RENEW_BEFORE_MS) {
    let tokens = null;
    try {
      if (session.refreshToken) tokens = await tokenRequest({ grant_type: "refresh_token", refresh_token: session.refreshToken });
    } catch {
      tokens = null; // the refresh token ended (30 days) or was revoked
    }
    if (!tokens) {
      sessionStorage.removeItem(SESSION_KEY);
      await redirectToSignIn();
      throw new Error("your sign-in ended: signing in again");
    }
    await adoptTokens(tokens, session);
  } else {
    const fresh = await fetchCredentials(session.idToken, session.identityId);
    session = { ...session, credentials: fresh.credentials };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  }
}

async function client() {
  if (!session) throw new Error("not signed in");
  if (session.credentials.expires - Date.now() < RENEW_BEFORE_MS) {
    renewing ??= renew().finally(() => {
      renewing = null;
    });
    await renewing;
  }
  const { accessKeyId, secretAccessKey, sessionToken } = session.credentials;
  return new AwsClient({ accessKeyId, secretAccessKey, sessionToken, service: "execute-api", region: config.region });
}

export async function signedFetch(url, init = {}) {
  const aws = await client();
  return fetch(await aws.sign(url, init), { redirect: init.redirect });
}

export async function signedSocketUrl(url) {
  const aws = await client();
  // The handshake cannot carry headers: SigV4 goes in the query string (API Gateway checks $connect).
  const unsigned = new URL(url.replace(/^ws/, "http"));
  unsigned.searchParams.set("X-Amz-Expires", String(SOCKET_URL_TTL_SECONDS));
  const signed = await aws.sign(unsigned.toString(), { method: "GET", aws: { signQuery: true } });
  return signed.url.replace(/^http/, "ws");
}

export function signedInEmail() {
  return session ? tokenClaims(session.idToken).email || null : null;
}

export function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
  session = null;
  const url = new URL(`${config.cognitoDomain}/logout`);
  url.search = new URLSearchParams({ client_id: config.clientId, logout_uri: redirectUri() }).toString();
  globalThis.location.assign(url.toString());
}
