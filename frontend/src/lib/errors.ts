/**
 * Errors of the streaming client.
 *
 * SpoolError
 * ├── HttpError            a non-2xx answer, with the server's code and message
 * ├── ProtocolError        the body is not the spool protocol; not retried
 * └── ConnectionLostError  the connection went quiet or skipped a seq; resumed
 */

export class SpoolError extends Error {
  override name = "SpoolError";
}

export class HttpError extends SpoolError {
  override name = "HttpError";

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** 5xx, 429 and 408 may pass; a 4xx will answer the same again. */
  get retryable(): boolean {
    return this.status >= 500 || this.status === 429 || this.status === 408;
  }

  static async from(response: Response): Promise<HttpError> {
    let code = `http_${response.status}`;
    let message = response.statusText || code;
    try {
      const body = (await response.json()) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      // Not the JSON error body (a proxy's page, say): keep the status line.
    }
    return new HttpError(response.status, code, message);
  }
}

export class ProtocolError extends SpoolError {
  override name = "ProtocolError";
}

export class ConnectionLostError extends SpoolError {
  override name = "ConnectionLostError";
}
