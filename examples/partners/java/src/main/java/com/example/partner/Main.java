package com.example.partner;

import com.example.partner.PartnerSettings.SettingsException;
import com.microsoft.aad.msal4j.IAuthenticationResult;
import com.microsoft.aad.msal4j.MsalException;
import com.microsoft.aad.msal4j.MsalServiceException;
import java.io.IOException;
import java.io.PrintStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.ExecutionException;

/**
 * The partner's program: a token for PARTNER_SCOPE with the partner's certificate, then
 * GET /orders through the gateway. Prints {@code HTTP <status>}, then the token's decoded header
 * and claims, each as a JSON line after "header:" and "claims:" (never the token itself).
 *
 * <p>Exit codes: 0 the API answered 2xx; 1 the token request was refused or failed, or the API
 * answered otherwise or not at all; 2 a setting is missing or invalid (the message names it).
 */
public final class Main {
  static final String PATH = "/orders";

  private Main() {}

  public static void main(String[] args) {
    System.exit(run(System.getenv(), System.out, System.err));
  }

  static int run(Map<String, String> env, PrintStream out, PrintStream err) {
    PartnerClient client;
    try {
      PartnerSettings settings = PartnerSettings.fromEnvironment(env);
      client = new PartnerClient(settings, PartnerCredential.load(settings));
    } catch (SettingsException e) {
      err.println(e.getMessage());
      return 2;
    }
    try {
      IAuthenticationResult token = client.acquireToken();
      HttpResponse<String> response = client.get(PATH, token);
      out.println("HTTP " + response.statusCode());
      printDecoded(token.accessToken(), out);
      return response.statusCode() / 100 == 2 ? 0 : 1;
    } catch (ExecutionException e) {
      err.println(tokenError(e.getCause()));
      return 1;
    } catch (IOException e) {
      err.println("request failed: GET " + PATH + ": " + e);
      return 1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return 1;
    }
  }

  /** One line: Entra ID's description starts with its AADSTS code; its trace ids follow on other lines. */
  static String tokenError(Throwable cause) {
    if (cause instanceof MsalServiceException refused) {
      return "token request refused: " + refused.getMessage().lines().findFirst().orElse(refused.errorCode());
    }
    if (cause instanceof MsalException failed) return "token request failed: " + failed.getMessage();
    return "token request failed: " + cause;
  }

  /** The header and claims of a JWT access token, decoded (its signature is left out). */
  static void printDecoded(String accessToken, PrintStream out) {
    String[] parts = accessToken.split("\\.");
    if (parts.length != 3) {
      out.println("(the access token is not a JWT: nothing to decode)");
      return;
    }
    Base64.Decoder base64Url = Base64.getUrlDecoder();
    out.println("header:");
    out.println(new String(base64Url.decode(parts[0]), StandardCharsets.UTF_8));
    out.println("claims:");
    out.println(new String(base64Url.decode(parts[1]), StandardCharsets.UTF_8));
  }
}
