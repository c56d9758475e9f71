/** An error that knows the HTTP status it should be answered with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "HttpError";
  }
}

export const badRequest = (message: string, cause?: unknown) => new HttpError(400, message, { cause });
export const notFound = (message: string, cause?: unknown) => new HttpError(404, message, { cause });

/** Raised for an invalid environment at start; the CLI prints it and exits 1. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}
