package com.example.partner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.azure.json.JsonProviders;
import com.azure.json.JsonReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.math.BigInteger;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/** What the tests share: the stack's partner settings, runs of the example, keys and certificates. */
final class TestSupport {
  private TestSupport() {}

  static final String[] STACK_VARIABLES = {
    "ENTRA_INSTANCE", "PARTNER_TENANT_ID", "PARTNER_CLIENT_ID", "PARTNER_SCOPE",
    "PARTNER_API_BASE_URL", "PARTNER_CERT_DIR", "PARTNER_CA_FILE", "CERTFLOW_EMULATOR_METRICS_URL"
  };

  /** Partner contoso of the stack examples/partners/with-stack.cjs started for this run. */
  static Map<String, String> stackEnvironment() {
    Map<String, String> env = new HashMap<>();
    for (String name : STACK_VARIABLES) {
      String value = System.getenv(name);
      if (value == null || value.isBlank()) {
        throw new IllegalStateException(
            name + " is not set: run the tests against a stack, "
                + "npx nx run partner-java:test");
      }
      env.put(name, value);
    }
    return env;
  }

  record Run(int exitCode, String out, String err) {}

  /** The example's main, in this JVM, with `env` as its environment. */
  static Run run(Map<String, String> env) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code =
        Main.run(
            env,
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  /** The example as a program of its own (`java [jvmOptions] com.example.partner.Main`), with `env` only. */
  static Run runProcess(Map<String, String> env, String... jvmOptions) throws IOException, InterruptedException {
    Path java = Path.of(System.getProperty("java.home"), "bin", "java");
    List<String> command = new ArrayList<>(List.of(java.toString()));
    command.addAll(List.of(jvmOptions));
    command.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName()));
    ProcessBuilder pb = new ProcessBuilder(command);
    pb.environment().clear();
    pb.environment().putAll(env);
    Process p = pb.start();
    p.getOutputStream().close();
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the example did not finish within 60 s");
    return new Run(
        p.exitValue(),
        new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8),
        new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
  }

  /** The JSON object of a string, as maps, lists, strings, numbers and booleans. */
  static Map<String, Object> json(String text) throws IOException {
    try (JsonReader reader = JsonProviders.createReader(text)) {
      return reader.readMap(JsonReader::readUntyped);
    }
  }

  static Map<String, Object> jsonOfBase64Url(String part) throws IOException {
    return json(new String(Base64.getUrlDecoder().decode(part), StandardCharsets.UTF_8));
  }

  /** A new RSA key pair, from the JDK. */
  static KeyPair rsaKeyPair() throws Exception {
    KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
    generator.initialize(2048);
    return generator.generateKeyPair();
  }

  /** A self-signed certificate for `keys`, valid from an hour ago for a day. */
  static X509Certificate selfSigned(KeyPair keys, String commonName, String... dnsNames) throws Exception {
    X500Name name = new X500Name("CN=" + commonName);
    Instant now = Instant.now();
    JcaX509v3CertificateBuilder builder =
        new JcaX509v3CertificateBuilder(
            name,
            BigInteger.valueOf(now.toEpochMilli()),
            Date.from(now.minus(Duration.ofHours(1))),
            Date.from(now.plus(Duration.ofDays(1))),
            name,
            keys.getPublic());
    if (dnsNames.length > 0) {
      GeneralName[] names =
          Stream.of(dnsNames).map(d -> new GeneralName(GeneralName.dNSName, d)).toArray(GeneralName[]::new);
      builder.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(names));
    }
    return new JcaX509CertificateConverter()
        .getCertificate(builder.build(new JcaContentSignerBuilder("SHA256withRSA").build(keys.getPrivate())));
  }

  static String pem(String label, byte[] der) {
    String body = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der);
    return "-----BEGIN " + label + "-----\n" + body + "\n-----END " + label + "-----\n";
  }

  /** partner.key.pem (unencrypted PKCS#8) and partner.crt.pem in `dir`, as `cert create` writes them. */
  static void writePartnerFiles(Path dir, KeyPair keys, X509Certificate certificate) throws Exception {
    Files.writeString(dir.resolve("partner.key.pem"), pem("PRIVATE KEY", keys.getPrivate().getEncoded()));
    Files.writeString(dir.resolve("partner.crt.pem"), pem("CERTIFICATE", certificate.getEncoded()));
  }

  /** A copy of a certificate directory, its links copied as links (they point inside it). */
  static void copyDirectory(Path from, Path to) throws IOException {
    List<Path> paths;
    try (Stream<Path> walk = Files.walk(from)) {
      paths = new ArrayList<>(walk.toList());
    }
    for (Path source : paths) {
      Path target = to.resolve(from.relativize(source).toString());
      if (Files.isSymbolicLink(source)) Files.createSymbolicLink(target, Files.readSymbolicLink(source));
      else if (Files.isDirectory(source, LinkOption.NOFOLLOW_LINKS)) Files.createDirectories(target);
      else Files.copy(source, target);
    }
  }

  /** Runs the partner worker (apps/partner-worker, built by the test target's dependencies). */
  static String partnerWorker(Map<String, String> env, String... args) throws IOException, InterruptedException {
    Path main = Path.of("../../../apps/partner-worker/dist/main.js").toAbsolutePath().normalize();
    assertTrue(Files.isRegularFile(main), main + " is missing: build it, npx nx run partner-worker:build");
    List<String> command = new ArrayList<>(List.of("node", main.toString()));
    command.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
    pb.environment().putAll(env);
    Process p = pb.start();
    p.getOutputStream().close();
    String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "partner-worker did not finish within 60 s");
    assertEquals(0, p.exitValue(), "partner-worker " + String.join(" ", args) + ":\n" + output);
    return output;
  }

  /** The emulator's count of tokens issued to `clientId`, all series added up. */
  static long tokensIssued(Map<String, String> env, String clientId) throws Exception {
    HttpClient http =
        HttpClient.newBuilder()
            .sslContext(PartnerClient.trusting(Path.of(env.get("PARTNER_CA_FILE"))))
            .build();
    HttpResponse<String> response =
        http.send(
            HttpRequest.newBuilder(URI.create(env.get("CERTFLOW_EMULATOR_METRICS_URL"))).build(),
            HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode(), "GET /metrics of the emulator");
    String prefix = "entra_emulator_tokens_issued_total{";
    return response
        .body()
        .lines()
        .filter(l -> l.startsWith(prefix) && l.contains("client_id=\"" + clientId + "\""))
        .mapToLong(l -> (long) Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
        .sum();
  }
}
