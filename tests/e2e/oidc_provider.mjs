// A real OpenID Connect provider (node `oidc-provider`, its development
// sign-in pages) for tests/oidc.rs:
//
//   OIDC_PORT=P OIDC_REDIRECT=URL OIDC_ACCOUNTS='{"login":{"email":"…","email_verified":true}}' \
//     node oidc_provider.mjs
//
// Any login signs in (any password); its claims come from OIDC_ACCOUNTS
// (unknown logins have none). One confidential client, `onair` /
// `onair-secret`, with PKCE required. Email and name come from UserInfo, as
// with many providers, not in the ID token. Prints `ready` when listening.

import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'onair',
    client_secret: 'onair-secret',
    redirect_uris: [process.env.OIDC_REDIRECT],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username'],
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['onair-test-cookie-key'] },
  async findAccount(_ctx, id) {
    const a = accounts[id] || {};
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...a };
      },
    };
  },
});
// Plain http on loopback is what the test has; the provider warns only.
provider.proxy = false;
provider.on('server_error', (_ctx, err) => console.error(`server_error: ${err.stack || err}`));
provider.listen(port, '127.0.0.1', () => console.log('ready'));
