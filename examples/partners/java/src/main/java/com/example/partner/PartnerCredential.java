package com.example.partner;

import com.example.partner.PartnerSettings.SettingsException;
import com.microsoft.aad.msal4j.ClientCredentialFactory;
import com.microsoft.aad.msal4j.IClientCertificate;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.UnrecoverableKeyException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.interfaces.RSAPrivateCrtKey;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import javax.crypto.Cipher;
import javax.crypto.EncryptedPrivateKeyInfo;
import javax.crypto.SecretKey;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;

/**
 * The partner's key and certificate, as MSAL4J's certificate credential: the files `partner-worker
 * cert create` writes (partner.key.pem, unencrypted PKCS#8 by default or encrypted with
 * PARTNER_KEY_PASSPHRASE; partner.crt.pem), or a PKCS#12 key store (PARTNER_PFX_FILE, e.g. from
 * `partner-worker cert export --format pfx`). The files are opened through the directory's links
 * each time, so a rotated certificate is picked up by the next run.
 */
public final class PartnerCredential {
  private PartnerCredential() {}

  public static IClientCertificate load(PartnerSettings settings) throws SettingsException {
    if (settings.pfxFile().isPresent()) {
      return fromPkcs12(settings.pfxFile().get(), settings.pfxPassword().orElseThrow());
    }
    Path dir = settings.certDir().orElseThrow();
    X509Certificate certificate = readCertificate(dir.resolve("partner.crt.pem"));
    PrivateKey key = readPrivateKey(dir.resolve("partner.key.pem"), settings.keyPassphrase().orElse(null));
    if (!(key instanceof RSAPrivateCrtKey rsa)
        || !(certificate.getPublicKey() instanceof RSAPublicKey pub)
        || !rsa.getModulus().equals(pub.getModulus())) {
      throw new SettingsException(
          "PARTNER_CERT_DIR", "partner.key.pem is not the key of partner.crt.pem in " + dir);
    }
    return ClientCredentialFactory.createFromCertificate(key, certificate);
  }

  /** MSAL4J reads PKCS#12 itself; this only turns its exceptions into a clear message. */
  static IClientCertificate fromPkcs12(Path file, String password) throws SettingsException {
    try (InputStream in = Files.newInputStream(file)) {
      return ClientCredentialFactory.createFromCertificate(in, password);
    } catch (IOException e) {
      if (e.getCause() instanceof UnrecoverableKeyException) {
        throw new SettingsException("PARTNER_PFX_PASSWORD", "wrong password for " + file);
      }
      throw new SettingsException("PARTNER_PFX_FILE", "cannot read " + file + " as PKCS#12: " + e);
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      throw new SettingsException("PARTNER_PFX_FILE", "cannot use " + file + ": " + e.getMessage());
    }
  }

  static X509Certificate readCertificate(Path file) throws SettingsException {
    try (InputStream in = Files.newInputStream(file)) {
      return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
    } catch (IOException | GeneralSecurityException e) {
      throw new SettingsException("PARTNER_CERT_DIR", "cannot read the certificate " + file + ": " + e);
    }
  }

  /**
   * An unencrypted PKCS#8 key (PEM label PLAIN_KEY), or the partner worker's encrypted one (PEM
   * label ENCRYPTED_KEY: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC), with the JDK alone.
   */
  static PrivateKey readPrivateKey(Path file, String passphrase) throws SettingsException {
    String pem;
    try {
      pem = Files.readString(file);
    } catch (IOException e) {
      String hint = Files.exists(file.resolveSibling("partner.key.p11"))
          ? " (the key is in a PKCS#11 token: this example reads key files only)"
          : "";
      throw new SettingsException(
          "PARTNER_CERT_DIR", "cannot read the private key " + file + ": " + e + hint);
    }
    try {
      if (pem.contains(pemBegin(PLAIN_KEY))) {
        return rsaKey(new PKCS8EncodedKeySpec(pemBody(pem, PLAIN_KEY)));
      }
      if (pem.contains(pemBegin(ENCRYPTED_KEY))) {
        if (passphrase == null) {
          throw new SettingsException("PARTNER_KEY_PASSPHRASE", "is required: " + file + " is encrypted");
        }
        var encrypted = new EncryptedPrivateKeyInfo(pemBody(pem, ENCRYPTED_KEY));
        return rsaKey(decrypt(encrypted, passphrase, file));
      }
    } catch (IOException | GeneralSecurityException e) {
      throw new SettingsException("PARTNER_CERT_DIR", "cannot read the private key " + file + ": " + e);
    }
    throw new SettingsException(
        "PARTNER_CERT_DIR",
        file + " is not a PKCS#8 PEM key (" + PLAIN_KEY + " or " + ENCRYPTED_KEY + ")");
  }

  private static PKCS8EncodedKeySpec decrypt(EncryptedPrivateKeyInfo info, String passphrase, Path file)
      throws GeneralSecurityException, SettingsException {
    // Java 17 names a PBES2 key "PBES2", which no SecretKeyFactory takes; its parameters carry the
    // full name, e.g. PBEWithHmacSHA256AndAES_256 (Java 21+ also return that from getAlgName()).
    String algorithm = info.getAlgParameters().toString();
    PBEKeySpec spec = new PBEKeySpec(passphrase.toCharArray());
    try {
      Cipher cipher = Cipher.getInstance(algorithm);
      SecretKey key = SecretKeyFactory.getInstance(algorithm).generateSecret(spec);
      cipher.init(Cipher.DECRYPT_MODE, key, info.getAlgParameters());
      return info.getKeySpec(cipher);
    } catch (java.security.spec.InvalidKeySpecException e) {
      throw new SettingsException("PARTNER_KEY_PASSPHRASE", "wrong passphrase for " + file);
    } finally {
      spec.clearPassword();
    }
  }

  private static PrivateKey rsaKey(PKCS8EncodedKeySpec spec) throws GeneralSecurityException {
    return KeyFactory.getInstance("RSA").generatePrivate(spec);
  }

  /** The PEM labels of PKCS#8 keys (RFC 7468). */
  static final String PLAIN_KEY = "PRIVATE KEY";
  static final String ENCRYPTED_KEY = "ENCRYPTED " + PLAIN_KEY;

  static String pemBegin(String label) {
    return "-----BEGIN " + label + "-----";
  }

  private static byte[] pemBody(String pem, String label) throws IOException {
    String begin = pemBegin(label);
    String end = "-----END " + label + "-----";
    int from = pem.indexOf(begin);
    int to = pem.indexOf(end, from);
    if (from < 0 || to < 0) throw new IOException("no " + label + " PEM block");
    try {
      return Base64.getMimeDecoder().decode(pem.substring(from + begin.length(), to));
    } catch (IllegalArgumentException e) {
      throw new IOException("the " + label + " PEM block is not base64", e);
    }
  }
}
