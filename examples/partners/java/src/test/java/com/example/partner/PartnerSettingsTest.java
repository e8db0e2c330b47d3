package com.example.partner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.example.partner.TestSupport.Run;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Settings are checked before anything is sent: a bad one is named, exit code 2. */
class PartnerSettingsTest {
  private static Map<String, String> valid() {
    Map<String, String> env = new HashMap<>();
    env.put("PARTNER_TENANT_ID", "11111111-2222-3333-4444-555555555555");
    env.put("PARTNER_CLIENT_ID", "66666666-7777-8888-9999-000000000000");
    env.put("PARTNER_SCOPE", "api://certflow-orders/.default");
    env.put("PARTNER_API_BASE_URL", "https://127.0.0.1:8443");
    env.put("PARTNER_CERT_DIR", "/srv/partner");
    return env;
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "PARTNER_TENANT_ID    |                                      | PARTNER_TENANT_ID: is required",
        "PARTNER_TENANT_ID    | contoso.onmicrosoft.com              | PARTNER_TENANT_ID: must be a GUID",
        "PARTNER_CLIENT_ID    | not-a-guid                           | PARTNER_CLIENT_ID: must be a GUID",
        "PARTNER_SCOPE        |                                      | PARTNER_SCOPE: is required",
        "PARTNER_SCOPE        | api://certflow-orders/Orders.Read    | PARTNER_SCOPE: must be one resource",
        "PARTNER_SCOPE        | api://a/.default api://b/.default    | PARTNER_SCOPE: must be one resource",
        "ENTRA_INSTANCE       | http://login.microsoftonline.com     | ENTRA_INSTANCE: must use https",
        "ENTRA_INSTANCE       | https://login.microsoftonline.com/t  | ENTRA_INSTANCE: must be the instance only",
        "PARTNER_API_BASE_URL | ftp://127.0.0.1                      | PARTNER_API_BASE_URL: must use https or http",
        "PARTNER_API_BASE_URL | /orders                              | PARTNER_API_BASE_URL: must be an absolute URL",
        "PARTNER_API_BASE_URL | https://127.0.0.1:8443/api?x=1       | PARTNER_API_BASE_URL: must not have a query or fragment",
        "PARTNER_API_BASE_URL | https://127.0.0.1:8443/api#x         | PARTNER_API_BASE_URL: must not have a query or fragment",
        "PARTNER_API_BASE_URL | https://user@127.0.0.1:8443          | PARTNER_API_BASE_URL: must not contain credentials",
        "ENTRA_INSTANCE       | https://login.microsoftonline.com?x  | ENTRA_INSTANCE: must not have a query or fragment",
        "ENTRA_INSTANCE       | https://login.microsoftonline.com#x  | ENTRA_INSTANCE: must not have a query or fragment",
        "ENTRA_INSTANCE       | https://u:p@login.microsoftonline.com | ENTRA_INSTANCE: must not contain credentials",
        // The URL cases shared by the three quick-starts' tests (and the partner worker's env.spec.ts).
        "PARTNER_API_BASE_URL | https://127.0.0.1:8443?              | PARTNER_API_BASE_URL: must not have a query or fragment",
        "PARTNER_API_BASE_URL | https://127.0.0.1:8443#              | PARTNER_API_BASE_URL: must not have a query or fragment",
        "PARTNER_API_BASE_URL | https://127.0.0.1:8443/api?          | PARTNER_API_BASE_URL: must not have a query or fragment",
        "ENTRA_INSTANCE       | https://login.example.test?          | ENTRA_INSTANCE: must not have a query or fragment",
        "ENTRA_INSTANCE       | https://login.example.test#          | ENTRA_INSTANCE: must not have a query or fragment",
        "PARTNER_API_BASE_URL | https://@127.0.0.1:8443              | PARTNER_API_BASE_URL: must not contain credentials",
        "PARTNER_API_BASE_URL | https://127.0.0.1:99999              | PARTNER_API_BASE_URL: must be an absolute URL",
        "ENTRA_INSTANCE       | https://login.example.test:99999     | ENTRA_INSTANCE: must be an absolute URL",
        "ENTRA_INSTANCE       | https://[::1                         | ENTRA_INSTANCE: must be an absolute URL",
        "ENTRA_INSTANCE       | https://:8443                        | ENTRA_INSTANCE: must be an absolute URL",
        "PARTNER_API_BASE_URL | https://[v1.x]                       | PARTNER_API_BASE_URL: must be an absolute URL",
        "ENTRA_INSTANCE       | https://login.example.test//         | ENTRA_INSTANCE: must be the instance only",
        "PARTNER_CERT_DIR     |                                      | PARTNER_CERT_DIR: is required",
        "PARTNER_PFX_FILE     | /srv/partner/partner.pfx             | PARTNER_PFX_PASSWORD: is required with",
      })
  void aBadSettingIsNamed(String variable, String value, String message) {
    Map<String, String> env = valid();
    if (value == null) env.remove(variable);
    else env.put(variable, value);

    Run run = TestSupport.run(env);

    assertEquals(2, run.exitCode());
    assertTrue(run.err().startsWith("" + message), run.err());
    assertEquals("", run.out());
  }

  @Test
  void aCaFileWithoutCertificatesIsNamed(@TempDir Path dir) throws Exception {
    var keys = TestSupport.rsaKeyPair();
    TestSupport.writePartnerFiles(dir, keys, TestSupport.selfSigned(keys, "partner"));
    Map<String, String> env = valid();
    env.put("PARTNER_CERT_DIR", dir.toString());
    env.put("PARTNER_CA_FILE", Files.writeString(dir.resolve("ca.pem"), "not a certificate\n").toString());

    Run run = TestSupport.run(env);

    assertEquals(2, run.exitCode());
    assertTrue(run.err().startsWith("PARTNER_CA_FILE: "), run.err());
  }

  @Test
  void aKeyThatIsNotTheCertificatesIsNamed(@TempDir Path dir) throws Exception {
    TestSupport.writePartnerFiles(
        dir, TestSupport.rsaKeyPair(), TestSupport.selfSigned(TestSupport.rsaKeyPair(), "partner"));
    Map<String, String> env = valid();
    env.put("PARTNER_CERT_DIR", dir.toString());

    Run run = TestSupport.run(env);

    assertEquals(2, run.exitCode());
    assertTrue(
        run.err().startsWith("PARTNER_CERT_DIR: partner.key.pem is not the key of partner.crt.pem"), run.err());
  }

  @Test
  void microsoftHostsKeepMsalsAuthorityChecksOthersTurnThemOff() throws Exception {
    Map<String, String> env = valid();
    assertTrue(PartnerSettings.fromEnvironment(env).microsoftAuthority(), "the default instance");
    assertEquals(
        "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555",
        PartnerSettings.fromEnvironment(env).authority());
  }

  @ParameterizedTest
  @CsvSource({
    "https://login.microsoftonline.com, true",
    "https://login.microsoftonline.com:443, true",
    "https://LOGIN.microsoftonline.com:8443, true",
    "https://login.microsoftonline.com., true",
    "https://login.microsoftonline.com.:443, true",
    "https://login.microsoftonline.us/, true",
    "https://login.windows.net, true",
    "https://sts.windows.net, true",
    "https://login.sovcloud-identity.fr, true",
    "https://localhost:8443, false",
    "https://127.0.0.1:8443, false",
    "https://login.microsoftonline.com.example.net, false",
  })
  void authorityChecksAreDecidedByTheHostNameAlone(String instance, boolean microsoft) throws Exception {
    Map<String, String> env = valid();
    env.put("ENTRA_INSTANCE", instance);
    assertEquals(microsoft, PartnerSettings.fromEnvironment(env).microsoftAuthority(), instance);
  }

  @Test
  void theDefaultPortIsDroppedAsThePartnerWorkerDoes() throws Exception {
    Map<String, String> env = valid();
    env.put("ENTRA_INSTANCE", "https://login.microsoftonline.com:443/");
    env.put("PARTNER_API_BASE_URL", "https://apim.example.net:443/orders-api/");
    PartnerSettings settings = PartnerSettings.fromEnvironment(env);
    assertEquals("https://login.microsoftonline.com", settings.entraInstance().toString());
    assertEquals("https://apim.example.net/orders-api", settings.apiBaseUrl().toString());
    env.put("PARTNER_API_BASE_URL", "http://127.0.0.1:8080/api");
    assertEquals("http://127.0.0.1:8080/api", PartnerSettings.fromEnvironment(env).apiBaseUrl().toString());
  }
}
