// A real OpenID provider for the authentication tests (npm oidc-provider), on 127.0.0.1.
//
// Clients (client-credentials grant, secret "secret"): reader, writer, owner, norole; each
// token is a JWT access token (resource indicators) carrying its client's app roles in the
// "roles" claim, as Entra ID does. The audience is the requested `resource`.
//
// Test-only endpoints beside the provider's own:
//   POST /test/rotate  switch to a new signing key (the old one stays in the JWKS, as after a
//                      real rotation), answers {"kid": new kid}
//   POST /test/sign    sign the posted JSON claims with the current key (expired or
//                      wrong-issuer tokens the grant would never issue)
//   GET  /test/stats   how often the JWKS was fetched
//
// Prints "oidc provider listening on http://127.0.0.1:PORT" once ready.
import http from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const ROLES = {
  reader: ['DicomDataReader'],
  writer: ['DicomDataWriter'],
  owner: ['DicomDataOwner'],
  norole: [],
  custom: ['ImagingAuditor'],
};

async function newKey(kid) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  return { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

function configuration(keys) {
  return {
    clients: Object.keys(ROLES).map((id) => ({
      client_id: id,
      client_secret: 'secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'api://dicomweb',
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: 'dicom',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (_ctx, token) => ({ roles: ROLES[token.clientId] ?? [] }),
  };
}

let jwksFetches = 0;
let current;
let signingKey;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname.startsWith('/test/')) {
    testEndpoint(url.pathname, req, res).catch((error) => {
      res.writeHead(500);
      res.end(String(error));
    });
    return;
  }
  if (url.pathname === '/jwks') jwksFetches += 1;
  current.callback()(req, res);
});

async function testEndpoint(path, req, res) {
  let body = '';
  for await (const chunk of req) body += chunk;
  let answer;
  if (path === '/test/rotate') {
    const previous = signingKey;
    signingKey = await newKey(`key-${Date.now()}`);
    current = new Provider(issuer, configuration([signingKey, previous]));
    answer = { kid: signingKey.kid };
  } else if (path === '/test/sign') {
    const key = await jose.importJWK(signingKey, 'RS256');
    const token = await new jose.SignJWT(JSON.parse(body))
      .setProtectedHeader({ alg: 'RS256', kid: signingKey.kid, typ: 'at+jwt' })
      .sign(key);
    answer = { token };
  } else if (path === '/test/stats') {
    answer = { jwksFetches };
  } else {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(answer));
}

let issuer;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', async () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  signingKey = await newKey('key-initial');
  current = new Provider(issuer, configuration([signingKey]));
  console.log(`oidc provider listening on ${issuer}`);
});
process.on('SIGTERM', () => process.exit(0));
