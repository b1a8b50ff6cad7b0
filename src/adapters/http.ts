/**
 * Deadlines for every HTTP request an SDK client sends. Without them an endpoint that accepts the
 * connection and never answers holds a call (and so the run) forever: the SDK's defaults are 0, no
 * limit at all. These bound one attempt; withRetry (retry.ts) bounds the call across its attempts.
 */

/** A TCP handshake with a regional endpoint takes milliseconds; 3 s still survives one lost SYN (resent after 1 s). */
export const CONNECTION_TIMEOUT_MS = 3_000;

/**
 * Until the response headers arrive. A full DescribeImages page (1,000 images) legitimately takes a
 * few seconds; 12 s is well over twice that, and two timed-out attempts still end a call in ~25 s.
 */
export const REQUEST_TIMEOUT_MS = 12_000;

/** Silence on an open socket, mid-body included, which the request timeout stops watching once headers arrive. */
export const SOCKET_TIMEOUT_MS = 12_000;

/** The shape `@smithy/node-http-handler` accepts as `requestHandler`; spelled out so no transitive package is imported. */
export interface RequestHandlerOptions {
  connectionTimeout: number;
  requestTimeout: number;
  /** Without it the handler only logs a warning when requestTimeout passes, and keeps waiting. */
  throwOnRequestTimeout: true;
  socketTimeout: number;
}

export function requestHandlerOptions(): RequestHandlerOptions {
  return {
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    throwOnRequestTimeout: true,
    socketTimeout: SOCKET_TIMEOUT_MS,
  };
}

/** Spread into any SDK client's configuration: `new SSMClient({ ...clientTimeouts() })`. */
export function clientTimeouts(): { requestHandler: RequestHandlerOptions } {
  return { requestHandler: requestHandlerOptions() };
}
