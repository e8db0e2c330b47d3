package com.example.partner;

import static com.example.partner.TestSupport.json;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.example.partner.TestSupport.Run;
import com.microsoft.aad.msal4j.IAuthenticationResult;
import com.microsoft.aad.msal4j.TokenSource;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The example against the local stack: real MSAL4J, the emulator, the gateway and the API. */
class PartnerAgainstStackTest {
  private static final Pattern JWT = Pattern.compile("[A-Za-z0-9_-]{10,}\\.[A-Za-z0-9_-]{10,}\\.[A-Za-z0-9_-]{10,}");
  private final Map<String, String> stack = TestSupport.stackEnvironment();

  @Test
  void getsATokenAndOrdersThroughTheGateway() throws Exception {
    Run run = TestSupport.run(stack);

    assertEquals(0, run.exitCode(), run.err());
    List<String> lines = run.out().lines().toList();
    assertEquals(
        List.of("HTTP 200", "header:", "claims:"), List.of(lines.get(0), lines.get(1), lines.get(3)), run.out());
    assertEquals(5, lines.size(), run.out());
    Map<String, Object> header = json(lines.get(2));
    Map<String, Object> claims = json(lines.get(4));
    assertEquals("RS256", header.get("alg"));
    assertEquals(stack.get("PARTNER_CLIENT_ID"), claims.get("azp"));
    assertEquals(stack.get("PARTNER_TENANT_ID"), claims.get("tid"));
    assertEquals("2", claims.get("azpacr"), "a certificate client");
    assertEquals(List.of("Orders.Read"), claims.get("roles"));
    assertFalse(JWT.matcher(run.out() + run.err()).find(), "the token itself is never printed");
  }

  @Test
  void aSecondAcquireIsServedFromMsalsCache() throws Exception {
    PartnerSettings settings = PartnerSettings.fromEnvironment(stack);
    PartnerClient client = new PartnerClient(settings, PartnerCredential.load(settings));
    long before = TestSupport.tokensIssued(stack, settings.clientId());

    IAuthenticationResult first = client.acquireToken();
    IAuthenticationResult second = client.acquireToken();

    assertEquals(TokenSource.IDENTITY_PROVIDER, first.metadata().tokenSource());
    assertEquals(TokenSource.CACHE, second.metadata().tokenSource());
    assertEquals(first.accessToken(), second.accessToken());
    assertEquals(before + 1, TestSupport.tokensIssued(stack, settings.clientId()), "tokens the emulator issued");
    assertEquals(200, client.get(Main.PATH, second).statusCode());
  }

  @Test
  void anApiThatDoesNotAnswer2xxOrAtAllExitsWith1() throws Exception {
    Map<String, String> env = new HashMap<>(stack);
    // The emulator has no /orders: a 404 from a server the CA file trusts.
    env.put("PARTNER_API_BASE_URL", stack.get("ENTRA_INSTANCE"));
    Run notFound = TestSupport.run(env);
    env.put("PARTNER_API_BASE_URL", "https://127.0.0.1:1");
    Run unreachable = TestSupport.run(env);

    assertEquals(1, notFound.exitCode(), notFound.err());
    assertTrue(notFound.out().startsWith("HTTP 404\nheader:\n"), notFound.out());
    assertFalse(JWT.matcher(notFound.out() + notFound.err()).find(), "the token itself is never printed");
    assertEquals(1, unreachable.exitCode());
    assertEquals("", unreachable.out());
    assertTrue(unreachable.err().startsWith("request failed: GET /orders: "), unreachable.err());
  }

  @Test
  void anUnregisteredCertificateIsRefusedWithAadsts700027(@TempDir Path dir) throws Exception {
    KeyPair keys = TestSupport.rsaKeyPair();
    TestSupport.writePartnerFiles(dir, keys, TestSupport.selfSigned(keys, "not-registered"));
    Map<String, String> env = new HashMap<>(stack);
    env.put("PARTNER_CERT_DIR", dir.toString());

    // As a program of its own, for the real exit code.
    Run run = TestSupport.runProcess(env);

    assertEquals(1, run.exitCode(), run.err());
    assertEquals("", run.out());
    assertTrue(
        run.err().startsWith("token request refused: AADSTS700027: "),
        "one clear line naming the code, got: " + run.err());
    assertEquals(1, run.err().lines().count(), run.err());
  }

  @Test
  void aResourceThePartnerIsNotGrantedIsRefusedWithAadsts500011() throws Exception {
    Map<String, String> env = new HashMap<>(stack);
    env.put("PARTNER_SCOPE", "api://not-registered/.default");

    Run run = TestSupport.run(env);

    assertEquals(1, run.exitCode(), run.err());
    assertEquals("", run.out());
    assertTrue(run.err().startsWith("token request refused: AADSTS500011: "), run.err());
  }

  /** TLS is verified: a CA file that issued none of the stack's certificates, or none at all (the JDK's CAs). */
  @Test
  void aServerCertificateNoTrustedCaIssuedFailsVerification(@TempDir Path dir) throws Exception {
    X509Certificate unrelatedCa = TestSupport.selfSigned(TestSupport.rsaKeyPair(), "unrelated test CA");
    Path caFile = Files.writeString(dir.resolve("unrelated-ca.pem"), TestSupport.pem("CERTIFICATE", unrelatedCa.getEncoded()));
    Map<String, String> unrelated = new HashMap<>(stack);
    unrelated.put("PARTNER_CA_FILE", caFile.toString());
    Map<String, String> unset = new HashMap<>(stack);
    unset.remove("PARTNER_CA_FILE");

    for (Run run : List.of(TestSupport.run(unrelated), TestSupport.run(unset))) {
      assertEquals(1, run.exitCode(), run.err());
      assertEquals("", run.out());
      assertTrue(run.err().startsWith("token request failed: "), run.err());
      assertTrue(run.err().contains("PKIX path building failed"), run.err());
    }
  }

  /**
   * PARTNER_CA_FILE is trusted besides the JDK's CAs, not instead of them: with the stack's CA in the
   * JDK's trust store (javax.net.ssl.trustStore) and an unrelated CA in PARTNER_CA_FILE, the call succeeds.
   */
  @Test
  void partnerCaFileIsTrustedBesidesTheJdksCas(@TempDir Path dir) throws Exception {
    KeyStore jdkTrust = KeyStore.getInstance("PKCS12");
    jdkTrust.load(null, null);
    try (InputStream in = Files.newInputStream(Path.of(stack.get("PARTNER_CA_FILE")))) {
      int i = 0;
      for (Certificate ca : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
        jdkTrust.setCertificateEntry("stack-ca-" + i++, ca);
      }
    }
    Path trustStore = dir.resolve("jdk-trust.p12");
    try (OutputStream out = Files.newOutputStream(trustStore)) {
      jdkTrust.store(out, "changeit".toCharArray());
    }
    X509Certificate unrelatedCa = TestSupport.selfSigned(TestSupport.rsaKeyPair(), "unrelated test CA");
    Map<String, String> env = new HashMap<>(stack);
    env.put("PARTNER_CA_FILE", Files.writeString(dir.resolve("unrelated-ca.pem"), TestSupport.pem("CERTIFICATE", unrelatedCa.getEncoded())).toString());

    Run run =
        TestSupport.runProcess(
            env,
            "-Djavax.net.ssl.trustStore=" + trustStore,
            "-Djavax.net.ssl.trustStoreType=PKCS12",
            "-Djavax.net.ssl.trustStorePassword=changeit");

    assertEquals(0, run.exitCode(), run.err());
    assertTrue(run.out().startsWith("HTTP 200\n"), run.out());
  }

  @Test
  void readsTheKeyThePartnerWorkerEncrypted(@TempDir Path dir) throws Exception {
    Path certDir = dir.resolve("contoso");
    TestSupport.copyDirectory(Path.of(stack.get("PARTNER_CERT_DIR")), certDir);
    Map<String, String> env = new HashMap<>(stack);
    env.put("PARTNER_CERT_DIR", certDir.toString());
    Map<String, String> reencrypt = new HashMap<>(env);
    reencrypt.put("PARTNER_NEW_KEY_PASSPHRASE", "correct horse battery staple");
    TestSupport.partnerWorker(reencrypt, "cert", "reencrypt");
    assertTrue(
        Files.readString(certDir.resolve("partner.key.pem"))
            .startsWith(PartnerCredential.pemBegin(PartnerCredential.ENCRYPTED_KEY)));

    Run withoutPassphrase = TestSupport.run(env);
    env.put("PARTNER_KEY_PASSPHRASE", "not the passphrase");
    Run wrongPassphrase = TestSupport.run(env);
    env.put("PARTNER_KEY_PASSPHRASE", "correct horse battery staple");
    Run run = TestSupport.run(env);

    assertEquals(2, withoutPassphrase.exitCode());
    assertTrue(withoutPassphrase.err().startsWith("PARTNER_KEY_PASSPHRASE: is required"), withoutPassphrase.err());
    assertEquals(2, wrongPassphrase.exitCode());
    assertTrue(wrongPassphrase.err().startsWith("PARTNER_KEY_PASSPHRASE: wrong passphrase"), wrongPassphrase.err());
    assertEquals("", wrongPassphrase.out());
    assertEquals(0, run.exitCode(), run.err());
    assertTrue(run.out().startsWith("HTTP 200\n"), run.out());
  }

  @Test
  void readsAPkcs12KeyStoreThePartnerWorkerExported(@TempDir Path dir) throws Exception {
    Path pfx = dir.resolve("partner.pfx");
    Map<String, String> export = new HashMap<>(stack);
    export.put("PARTNER_PFX_PASSWORD", "pfx password 1");
    TestSupport.partnerWorker(export, "cert", "export", "--format", "pfx", "--out", pfx.toString());
    Map<String, String> env = new HashMap<>(stack);
    env.remove("PARTNER_CERT_DIR");
    env.put("PARTNER_PFX_FILE", pfx.toString());

    env.put("PARTNER_PFX_PASSWORD", "not the password");
    Run wrongPassword = TestSupport.run(env);
    env.put("PARTNER_PFX_PASSWORD", "pfx password 1");
    Run run = TestSupport.run(env);

    assertEquals(2, wrongPassword.exitCode());
    assertEquals("PARTNER_PFX_PASSWORD: wrong password for " + pfx + "\n", wrongPassword.err());
    assertEquals("", wrongPassword.out());
    assertEquals(0, run.exitCode(), run.err());
    assertTrue(run.out().startsWith("HTTP 200\n"), run.out());
  }
}
