package com.example.partner;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The partner's settings, read from the environment with the partner worker's names, so the same
 * settings work in every language and against Entra ID itself. A missing or invalid value is a
 * {@link SettingsException} naming the variable, before anything is sent anywhere.
 */
public record PartnerSettings(
    URI entraInstance,
    String tenantId,
    String clientId,
    String scope,
    URI apiBaseUrl,
    Optional<Path> certDir,
    Optional<String> keyPassphrase,
    Optional<Path> pfxFile,
    Optional<String> pfxPassword,
    Optional<Path> caFile) {

  public static final String DEFAULT_ENTRA_INSTANCE = "https://login.microsoftonline.com";

  /**
   * Entra ID's public and national-cloud hosts: only these keep MSAL's authority checks on. MSAL4J
   * 1.26.1's own list (AadInstanceDiscoveryProvider.TRUSTED_HOSTS_SET, package-private, so copied
   * here); MSAL for Python and MSAL for Go list the same 13 hosts.
   */
  static final Set<String> MICROSOFT_HOSTS =
      Set.of(
          "login.microsoftonline.com",
          "login.microsoft.com",
          "login.windows.net",
          "sts.windows.net",
          "login.partner.microsoftonline.cn",
          "login.chinacloudapi.cn",
          "login.microsoftonline.de",
          "login-us.microsoftonline.com",
          "login.microsoftonline.us",
          "login.usgovcloudapi.net",
          "login.sovcloud-identity.fr",
          "login.sovcloud-identity.de",
          "login.sovcloud-identity.sg");

  private static final Pattern GUID =
      Pattern.compile("^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$");

  /** A setting that is missing or invalid; the message starts with the variable's name. */
  public static final class SettingsException extends Exception {
    private static final long serialVersionUID = 1L;

    public SettingsException(String variable, String message) {
      super(variable + ": " + message);
    }
  }

  public static PartnerSettings fromEnvironment(Map<String, String> env) throws SettingsException {
    URI instance =
        url("ENTRA_INSTANCE", value(env, "ENTRA_INSTANCE").orElse(DEFAULT_ENTRA_INSTANCE), List.of("https"));
    if (!instance.getRawPath().isEmpty() && !instance.getRawPath().equals("/")) {
      throw new SettingsException(
          "ENTRA_INSTANCE",
          "must be the instance only, without the tenant or a path (e.g. "
              + DEFAULT_ENTRA_INSTANCE
              + "), got \""
              + instance
              + "\"");
    }
    String tenantId = guid(env, "PARTNER_TENANT_ID");
    String clientId = guid(env, "PARTNER_CLIENT_ID");
    String scope = required(env, "PARTNER_SCOPE", "api://certflow-orders/.default");
    if (scope.chars().anyMatch(Character::isWhitespace)
        || !scope.endsWith("/.default")
        || scope.equals("/.default")) {
      throw new SettingsException(
          "PARTNER_SCOPE",
          "must be one resource followed by /.default for client credentials, got \"" + scope + "\"");
    }
    URI api =
        url(
            "PARTNER_API_BASE_URL",
            required(env, "PARTNER_API_BASE_URL", "https://127.0.0.1:8443"),
            List.of("https", "http"));
    Optional<Path> pfxFile = value(env, "PARTNER_PFX_FILE").map(Path::of);
    Optional<Path> certDir = value(env, "PARTNER_CERT_DIR").map(Path::of);
    if (pfxFile.isEmpty() && certDir.isEmpty()) {
      throw new SettingsException(
          "PARTNER_CERT_DIR",
          "is required (the directory holding partner.key.pem and partner.crt.pem),"
              + " unless PARTNER_PFX_FILE is set");
    }
    // Passwords are taken as they are: they may contain any character.
    Optional<String> pfxPassword = secret(env, "PARTNER_PFX_PASSWORD");
    if (pfxFile.isPresent() && pfxPassword.isEmpty()) {
      throw new SettingsException(
          "PARTNER_PFX_PASSWORD", "is required with PARTNER_PFX_FILE (the PKCS#12 file's password)");
    }
    return new PartnerSettings(
        withoutTrailingSlash(instance),
        tenantId,
        clientId,
        scope,
        withoutTrailingSlash(api),
        certDir,
        secret(env, "PARTNER_KEY_PASSPHRASE"),
        pfxFile,
        pfxPassword,
        value(env, "PARTNER_CA_FILE").map(Path::of));
  }

  /** `https://login.microsoftonline.com/<tenant>`, or the emulator's equivalent. */
  public String authority() {
    return entraInstance + "/" + tenantId;
  }

  /**
   * False for the emulator (or any other host): MSAL must not ask Microsoft about it. Decided by
   * the host name alone, whatever the port, case or trailing dot.
   */
  public boolean microsoftAuthority() {
    return MICROSOFT_HOSTS.contains(entraInstance.getHost().toLowerCase(Locale.ROOT).replaceAll("\\.$", ""));
  }

  private static Optional<String> value(Map<String, String> env, String name) {
    return Optional.ofNullable(env.get(name)).map(String::trim).filter(v -> !v.isEmpty());
  }

  private static Optional<String> secret(Map<String, String> env, String name) {
    return Optional.ofNullable(env.get(name)).filter(v -> !v.isEmpty());
  }

  private static String required(Map<String, String> env, String name, String example)
      throws SettingsException {
    return value(env, name)
        .orElseThrow(() -> new SettingsException(name, "is required (e.g. " + example + ")"));
  }

  private static String guid(Map<String, String> env, String name) throws SettingsException {
    String v = required(env, name, "00000000-0000-0000-0000-000000000000");
    if (!GUID.matcher(v).matches()) throw new SettingsException(name, "must be a GUID, got \"" + v + "\"");
    return v.toLowerCase(Locale.ROOT);
  }

  private static URI url(String name, String v, List<String> schemes) throws SettingsException {
    URI uri;
    try {
      uri = new URI(v);
    } catch (URISyntaxException e) {
      throw new SettingsException(name, "must be an absolute URL, got \"" + v + "\"");
    }
    if (!uri.isAbsolute() || uri.getHost() == null || uri.getPort() > 65535) {
      throw new SettingsException(name, "must be an absolute URL, got \"" + v + "\"");
    }
    if (!schemes.contains(uri.getScheme().toLowerCase(Locale.ROOT))) {
      throw new SettingsException(name, "must use " + String.join(" or ", schemes) + ", got \"" + v + "\"");
    }
    if (v.contains("?") || v.contains("#")) { // the raw text, as in the other quick-starts
      throw new SettingsException(name, "must not have a query or fragment, got \"" + v + "\"");
    }
    if (uri.getRawUserInfo() != null) throw new SettingsException(name, "must not contain credentials");
    return uri;
  }

  /** Without a trailing slash, nor the default port 443 of https (as the partner worker's URL). */
  private static URI withoutTrailingSlash(URI uri) {
    String text = uri.toString().replaceAll("/+$", "");
    if (uri.getPort() == 443 && uri.getScheme().equalsIgnoreCase("https")) {
      text = text.replaceFirst("^(?i)(https://[^/]*):443", "$1");
    }
    return URI.create(text);
  }
}
