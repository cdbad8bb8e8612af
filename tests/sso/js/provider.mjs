// An independent OpenID Provider (panva's certified oidc-provider) for
// tests/sso/test_oidc_interop.py. Usage: node provider.mjs <redirect_uri> <client_secret>
// Prints {"issuer": ...} once listening; logs in every browser as "alice" (login and
// consent are granted without a form) and serves until killed.
import http from "node:http";
import Provider from "oidc-provider";

const [redirectUri, clientSecret] = process.argv.slice(2);
const accounts = {
  alice: { sub: "alice-sub", preferred_username: "alice", name: "Alice Liddell" },
};

const server = http.createServer();
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: "matrix",
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        response_types: ["code"],
        grant_types: ["authorization_code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    claims: { openid: ["sub"], profile: ["preferred_username", "name"] },
    async findAccount(_ctx, id) {
      const claims = accounts[id];
      if (!claims) return undefined;
      return { accountId: id, async claims() { return claims; } };
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ["interop-cookie-key"] },
  });
  const callback = provider.callback();
  server.on("request", async (req, res) => {
    if (!req.url.startsWith("/interaction/")) {
      callback(req, res);
      return;
    }
    try {
      const { prompt, params, session } = await provider.interactionDetails(req, res);
      let result;
      if (prompt.name === "login") {
        result = { login: { accountId: "alice" } };
      } else {
        const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
        grant.addOIDCScope(params.scope);
        result = { consent: { grantId: await grant.save() } };
      }
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err));
    }
  });
  process.stdout.write(JSON.stringify({ issuer }) + "\n");
});
