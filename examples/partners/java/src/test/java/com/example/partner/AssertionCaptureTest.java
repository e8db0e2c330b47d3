package com.example.partner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.example.partner.TestSupport.Run;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What MSAL4J sends to the authority, measured: an HTTPS server on loopback stands in for Entra
 * ID, records every request and refuses the token request as Entra would. The README's
 * "What MSAL4J sends" section is this test's output.
 */
class AssertionCaptureTest {
  private static final String TENANT = "11111111-2222-3333-4444-555555555555";
  private static final String CLIENT = "66666666-7777-8888-9999-000000000000";

  record Request(String method, String path, String body) {}

  @Test
  void msal4jSendsAnRs256AssertionWithTheSha256ThumbprintAndTheCertificate(@TempDir Path dir) throws Exception {
    KeyPair serverKeys = TestSupport.rsaKeyPair();
    X509Certificate serverCert = TestSupport.selfSigned(serverKeys, "localhost", "localhost");
    List<Request> requests = new CopyOnWriteArrayList<>();
    HttpsServer authority = HttpsServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    authority.setHttpsConfigurator(new HttpsConfigurator(serverContext(serverKeys, serverCert)));
    authority.createContext(
        "/",
        exchange -> {
          String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
          requests.add(new Request(exchange.getRequestMethod(), exchange.getRequestURI().getPath(), body));
          byte[] answer =
              ("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700027: Client assertion contains"
                      + " an invalid signature. [Reason - The key was not found.]\\r\\nTrace ID: 0\",\"error_codes\":[700027]}")
                  .getBytes(StandardCharsets.UTF_8);
          exchange.getResponseHeaders().add("Content-Type", "application/json; charset=utf-8");
          exchange.sendResponseHeaders(401, answer.length);
          exchange.getResponseBody().write(answer);
          exchange.close();
        });
    authority.start();
    try {
      KeyPair partnerKeys = TestSupport.rsaKeyPair();
      X509Certificate partnerCert = TestSupport.selfSigned(partnerKeys, "partner");
      TestSupport.writePartnerFiles(dir, partnerKeys, partnerCert);
      Path caFile =
          Files.writeString(dir.resolve("authority.pem"), TestSupport.pem("CERTIFICATE", serverCert.getEncoded()));
      String instance = "https://localhost:" + authority.getAddress().getPort();
      Map<String, String> env = new HashMap<>();
      env.put("ENTRA_INSTANCE", instance);
      env.put("PARTNER_TENANT_ID", TENANT);
      env.put("PARTNER_CLIENT_ID", CLIENT);
      env.put("PARTNER_SCOPE", "api://certflow-orders/.default");
      env.put("PARTNER_API_BASE_URL", "https://127.0.0.1:9");
      env.put("PARTNER_CERT_DIR", dir.toString());
      env.put("PARTNER_CA_FILE", caFile.toString());

      Run run = TestSupport.run(env);

      assertEquals(1, run.exitCode());
      assertEquals(
          "token request refused: AADSTS700027: Client assertion contains an invalid signature."
              + " [Reason - The key was not found.]\n",
          run.err());
      // Instance discovery and authority validation are off: the token request is the only one.
      assertEquals(1, requests.size(), requests.toString());
      Request token = requests.get(0);
      assertEquals("POST", token.method());
      assertEquals("/" + TENANT + "/oauth2/v2.0/token", token.path());
      Map<String, String> form = form(token.body());
      assertEquals("client_credentials", form.get("grant_type"));
      assertEquals(CLIENT, form.get("client_id"));
      assertEquals("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", form.get("client_assertion_type"));
      // MSAL4J adds the OpenID Connect scopes to every request, client credentials included.
      assertEquals(
          Set.of("openid", "profile", "offline_access", "api://certflow-orders/.default"),
          Set.of(form.get("scope").split(" ")));

      String[] assertion = form.get("client_assertion").split("\\.");
      assertEquals(3, assertion.length);
      Map<String, Object> header = TestSupport.jsonOfBase64Url(assertion[0]);
      Map<String, Object> claims = TestSupport.jsonOfBase64Url(assertion[1]);
      System.out.println("MSAL4J client assertion header: " + new TreeSet<>(header.keySet()) + " " + header.get("alg"));
      System.out.println("MSAL4J client assertion claims: " + new TreeSet<>(claims.keySet()));
      System.out.println("MSAL4J x5t#S256: " + header.get("x5t#S256"));

      assertEquals(Set.of("alg", "typ", "x5t#S256", "x5c"), header.keySet());
      assertEquals("RS256", header.get("alg"));
      assertEquals("JWT", header.get("typ"));
      byte[] sha256 = MessageDigest.getInstance("SHA-256").digest(partnerCert.getEncoded());
      // Standard base64 with padding, not base64url: Entra ID takes either.
      assertEquals(Base64.getEncoder().encodeToString(sha256), header.get("x5t#S256"));
      assertEquals(List.of(Base64.getEncoder().encodeToString(partnerCert.getEncoded())), header.get("x5c"));

      assertEquals(Set.of("aud", "iss", "sub", "jti", "nbf", "exp"), claims.keySet());
      assertEquals(instance + "/" + TENANT + "/oauth2/v2.0/token", claims.get("aud"));
      assertEquals(CLIENT, claims.get("iss"));
      assertEquals(CLIENT, claims.get("sub"));
      assertEquals(600L, ((Number) claims.get("exp")).longValue() - ((Number) claims.get("nbf")).longValue());
      assertTrue(Math.abs(((Number) claims.get("nbf")).longValue() - System.currentTimeMillis() / 1000) < 60);
      Signature rs256 = Signature.getInstance("SHA256withRSA"); // RSASSA-PKCS1-v1_5
      rs256.initVerify(partnerCert.getPublicKey());
      rs256.update((assertion[0] + "." + assertion[1]).getBytes(StandardCharsets.US_ASCII));
      assertTrue(rs256.verify(Base64.getUrlDecoder().decode(assertion[2])), "signed with the partner's key");
    } finally {
      authority.stop(0);
    }
  }

  private static SSLContext serverContext(KeyPair keys, X509Certificate cert) throws Exception {
    KeyStore store = KeyStore.getInstance("PKCS12");
    store.load(null, null);
    char[] password = "server".toCharArray();
    store.setKeyEntry("server", keys.getPrivate(), password, new Certificate[] {cert});
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(store, password);
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(kmf.getKeyManagers(), null, null);
    return context;
  }

  private static Map<String, String> form(String body) {
    Map<String, String> fields = new HashMap<>();
    Arrays.stream(body.split("&"))
        .map(pair -> pair.split("=", 2))
        .forEach(
            kv ->
                fields.put(
                    URLDecoder.decode(kv[0], StandardCharsets.UTF_8),
                    URLDecoder.decode(kv[1], StandardCharsets.UTF_8)));
    return fields;
  }
}
