/** The HTTP client a host provides to the control plane and the HTTPS carrier (undici or fetch). */

/** Largest response body read; a larger one fails the request (no hub or API answer comes near it). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** One HTTP request. Redirects are never followed. */
export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD";
  url: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  timeoutMs: number;
  /** Aborting rejects the request with {@link HttpNetworkError}. */
  signal?: AbortSignal;
}

/** One HTTP answer: header names lowercased; every `Set-Cookie` value in `setCookies`. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  setCookies: string[];
  body: Uint8Array;
}

/** The request got no complete answer in time. */
export class HttpTimeoutError extends Error {
  override name = "HttpTimeoutError";
}

/** The request failed below HTTP (DNS, TCP, TLS, CORS in a browser, an aborted body). */
export class HttpNetworkError extends Error {
  override name = "HttpNetworkError";
}

/** Sends requests; rejects with {@link HttpTimeoutError} or {@link HttpNetworkError}. */
export interface HttpClient {
  request(request: HttpRequest): Promise<HttpResponse>;
  close(): Promise<void>;
}
