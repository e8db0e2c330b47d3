/**
 * MSAL's network module (`system.networkClient`) over node:https, trusting one CA: how an MSAL
 * client in a test reaches the emulator, whose certificate comes from a development CA that
 * `NODE_EXTRA_CA_CERTS` cannot name once the process runs. Typed by shape, so the emulator does
 * not depend on MSAL.
 */
import { Agent, request } from 'node:https';

/** MSAL's `NetworkRequestOptions`. */
export interface MsalRequestOptions {
  headers?: Record<string, string>;
  body?: string;
}

/** MSAL's `NetworkResponse<T>`. */
export interface MsalResponse<T> {
  headers: Record<string, string>;
  body: T;
  status: number;
}

/** MSAL's `INetworkModule`, plus `close()` for the kept-alive connections. */
export interface MsalNetworkClient {
  sendGetRequestAsync<T>(
    url: string,
    options?: MsalRequestOptions,
    timeout?: number,
  ): Promise<MsalResponse<T>>;
  sendPostRequestAsync<T>(url: string, options?: MsalRequestOptions): Promise<MsalResponse<T>>;
  close(): void;
}

export function msalNetworkClient(caPem: string): MsalNetworkClient {
  const agent = new Agent({ ca: caPem, keepAlive: true });
  const send = <T>(method: string, url: string, options: MsalRequestOptions = {}, timeout?: number) =>
    new Promise<MsalResponse<T>>((resolve, reject) => {
      const req = request(url, { method, agent, headers: options.headers ?? {} }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers))
            if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
          try {
            resolve({ headers, body: JSON.parse(text) as T, status: res.statusCode ?? 0 });
          } catch {
            reject(new Error(`${method} ${url}: HTTP ${res.statusCode} with a body that is not JSON`));
          }
        });
      });
      if (timeout !== undefined)
        req.setTimeout(timeout, () => req.destroy(new Error(`${method} ${url}: no answer in ${timeout} ms`)));
      req.on('error', reject);
      req.end(options.body);
    });
  return {
    sendGetRequestAsync: (url, options, timeout) => send('GET', url, options, timeout),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
    close: () => agent.destroy(),
  };
}
