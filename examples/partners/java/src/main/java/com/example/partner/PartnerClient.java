package com.example.partner;

import com.example.partner.PartnerSettings.SettingsException;
import com.microsoft.aad.msal4j.ClientCredentialParameters;
import com.microsoft.aad.msal4j.ConfidentialClientApplication;
import com.microsoft.aad.msal4j.IAuthenticationResult;
import com.microsoft.aad.msal4j.IClientCertificate;
import java.io.IOException;
import java.io.InputStream;
import java.net.MalformedURLException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.Collection;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

/**
 * One MSAL4J confidential client for the partner's certificate, and the API calls made with its
 * tokens. Keep one instance for the life of the program: MSAL's token cache lives in it, so a
 * second {@link #acquireToken()} is answered from the cache until the token nears its expiry.
 */
public final class PartnerClient {
  private static final Duration TIMEOUT = Duration.ofSeconds(30);

  private final PartnerSettings settings;
  private final ConfidentialClientApplication app;
  private final HttpClient http;

  public PartnerClient(PartnerSettings settings, IClientCertificate credential) throws SettingsException {
    this.settings = settings;
    SSLContext tls = settings.caFile().isPresent() ? trusting(settings.caFile().get()) : null;
    try {
      ConfidentialClientApplication.Builder builder =
          ConfidentialClientApplication.builder(settings.clientId(), credential)
              .authority(settings.authority());
      if (!settings.microsoftAuthority()) {
        // Not Entra ID's own host (the emulator): MSAL must not ask login.microsoftonline.com
        // to validate or discover it.
        builder.validateAuthority(false).instanceDiscovery(false);
        if (settings.entraInstance().getPort() != -1) {
          builder.aadInstanceDiscoveryResponse(sameCacheWithPort(settings));
        }
      }
      if (tls != null) builder.sslSocketFactory(tls.getSocketFactory());
      this.app = builder.build();
    } catch (MalformedURLException e) {
      throw new SettingsException("ENTRA_INSTANCE", "not a valid authority: " + e.getMessage());
    }
    HttpClient.Builder httpBuilder = HttpClient.newBuilder().connectTimeout(TIMEOUT);
    if (tls != null) httpBuilder.sslContext(tls);
    this.http = httpBuilder.build();
  }

  /** A token for PARTNER_SCOPE: from MSAL's cache when it holds one, else from Entra ID. */
  public IAuthenticationResult acquireToken() throws InterruptedException, ExecutionException {
    return app.acquireToken(ClientCredentialParameters.builder(Set.of(settings.scope())).build()).get();
  }

  /** GET {PARTNER_API_BASE_URL}{path} with the token as a bearer token. */
  public HttpResponse<String> get(String path, IAuthenticationResult token)
      throws IOException, InterruptedException {
    HttpRequest request =
        HttpRequest.newBuilder(URI.create(settings.apiBaseUrl() + path))
            .timeout(TIMEOUT)
            .header("Authorization", "Bearer " + token.accessToken())
            .GET()
            .build();
    return http.send(request, HttpResponse.BodyHandlers.ofString());
  }

  /**
   * MSAL4J stores a token under the authority's host and looks it up under host:port, so with an
   * explicit port (the emulator's; Entra ID has none) its cache would never answer. Instance
   * metadata that makes the two names aliases of one another lets it find the token again.
   */
  private static String sameCacheWithPort(PartnerSettings settings) {
    String host = settings.entraInstance().getHost();
    String hostAndPort = host + ":" + settings.entraInstance().getPort();
    String discovery = settings.authority() + "/v2.0/.well-known/openid-configuration";
    return "{\"tenant_discovery_endpoint\":\"" + discovery + "\","
        + "\"metadata\":[{\"preferred_network\":\"" + host + "\",\"preferred_cache\":\"" + host + "\","
        + "\"aliases\":[\"" + host + "\",\"" + hostAndPort + "\"]}]}";
  }

  /** The JDK's trusted CAs plus those of PARTNER_CA_FILE (a PEM bundle), for MSAL and the API. */
  static SSLContext trusting(Path caFile) throws SettingsException {
    Collection<? extends Certificate> extra;
    try (InputStream in = Files.newInputStream(caFile)) {
      extra = CertificateFactory.getInstance("X.509").generateCertificates(in);
    } catch (IOException | GeneralSecurityException e) {
      throw new SettingsException("PARTNER_CA_FILE", "cannot read " + caFile + " as PEM certificates: " + e);
    }
    if (extra.isEmpty()) throw new SettingsException("PARTNER_CA_FILE", caFile + " holds no certificate");
    try {
      KeyStore anchors = KeyStore.getInstance(KeyStore.getDefaultType());
      anchors.load(null, null);
      TrustManagerFactory jdk = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
      jdk.init((KeyStore) null);
      int i = 0;
      for (X509Certificate ca : ((X509TrustManager) jdk.getTrustManagers()[0]).getAcceptedIssuers()) {
        anchors.setCertificateEntry("jdk-" + i++, ca);
      }
      for (Certificate ca : extra) anchors.setCertificateEntry("partner-ca-file-" + i++, ca);
      TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
      tmf.init(anchors);
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(null, tmf.getTrustManagers(), null);
      return context;
    } catch (IOException | GeneralSecurityException e) {
      throw new IllegalStateException("cannot set up TLS trust", e);
    }
  }
}
