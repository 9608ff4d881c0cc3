// index.d.ts — types for @polytel/wasm (src/index.js).

/**
 * An attribute value; arrays of one kind (strings, numbers, booleans) are OTLP arrays (integers with other numbers:
 * doubles), other objects (mixed arrays included) are exported as their JSON text. Integers are int64, other numbers doubles.
 */
export type AttributeValue = string | number | boolean | bigint | string[] | number[] | boolean[] | bigint[];
export type Attributes = Record<string, AttributeValue | null | undefined>;

// Levels, phases and the stats fields are the core's tables (generated with the build).
import type { LevelName, Phase, Stats } from '../dist/polytel_tables.js';
export type { LevelName, Phase, Stats };

/** Where console lines go; each method gets one finished line (no trailing newline). */
export interface ConsoleSink {
  debug(line: string): void;
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
}

export interface PolytelOptions {
  /** Full telemetry at phase 2; phase 1 then records everything until bootstrapWorker(). Default: process.env (Node), globalThis.TELEMETRY_ENABLED (page), false. */
  telemetryEnabled?: boolean | string;
  /** Same as telemetryEnabled, spelled as the environment variable. */
  TELEMETRY_ENABLED?: boolean | string;
  /** OTEL_SDK_DISABLED: never export. */
  sdkDisabled?: boolean | string;
  /** service.name. Default: OTEL_SERVICE_NAME, else the script name (Node) or the page's host name. */
  serviceName?: string;
  serviceVersion?: string;
  /** Extra resource attributes; "k=v,k2=v2" (percent-encoded) or an object. */
  resourceAttributes?: string | Record<string, string | number | boolean>;
  /** Console threshold (POLYTEL_LOG_LEVEL). Default "info". */
  consoleLevel?: LevelName | number;
  /** "text" (default) or "json" lines. */
  consoleFormat?: 'text' | 'json';
  /** false: no console output; an object: lines go to its debug/info/warn/error methods instead of globalThis.console. */
  console?: false | ConsoleSink;
  /** Bound on memory held by recorded, not yet exported events (POLYTEL_MAX_MEMORY). */
  maxMemoryBytes?: number;
  /** The logger name (OTLP scope) of pt.info() and friends. Default "app". */
  target?: string;
  /** Node: read OTEL_*, POLYTEL_*, TELEMETRY_ENABLED from process.env (default true). */
  useEnv?: boolean;
  /** Environment variables for the core, anywhere (applied after process.env), e.g. { OTEL_BSP_SCHEDULE_DELAY: "500" }. */
  env?: Record<string, string>;
  /** Load the debug build (assertions, names). Default: POLYTEL_WASM_DEBUG in Node. */
  debug?: boolean;
}

export interface BootstrapOptions extends PolytelOptions {
  /** Base URL; /v1/traces, /v1/logs, /v1/metrics are appended. Default: OTEL_EXPORTER_OTLP_ENDPOINT (env or globalThis), http://localhost:4318. */
  endpoint?: string;
  tracesEndpoint?: string;
  logsEndpoint?: string;
  metricsEndpoint?: string;
  /** Default: OTEL_EXPORTER_OTLP_PROTOCOL, then http/protobuf. */
  protocol?: 'http/protobuf' | 'http/json' | 'protobuf' | 'json';
  /** Extra request headers (beside OTEL_EXPORTER_OTLP_HEADERS). */
  headers?: Record<string, string>;
  /** Per-request timeout (OTEL_EXPORTER_OTLP_TIMEOUT), ms. */
  timeoutMs?: number;
  /** "otlp" (default), "file" (Node: OTLP/JSON lines in exportDir/{traces,logs,metrics}.jsonl) or "none". */
  exporter?: 'otlp' | 'file' | 'none';
  /** The file exporter's directory (POLYTEL_EXPORT_DIR). */
  exportDir?: string;
  /**
   * gzip request bodies (CompressionStream), as OTEL_EXPORTER_OTLP_COMPRESSION. Unset: none in Node; in a page,
   * gzip for an endpoint on the page's own origin, none cross-origin (the OpenTelemetry Collector's CORS then
   * needs "Content-Encoding" in cors.allowed_headers).
   */
  compression?: 'gzip' | 'none';
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /**
   * The exit handlers (default true). false registers none. Node: 'beforeExit' flushes once, bounded by
   * exitTimeoutMs, then shuts down; 'exit' (process.exit()) counts what is left. Browsers: 'pagehide' runs
   * exitFlush(); 'visibilitychange' to hidden sends what fits the keepalive budget and keeps the rest;
   * 'pageshow' from the back/forward cache resumes.
   */
  flushOnExit?: boolean;
  /** Node: the bound on the flush at 'beforeExit', ms (POLYTEL_EXIT_TIMEOUT_MS, the core's exit_timeout_ms: 5000). */
  exitTimeoutMs?: number;
  /**
   * Browsers: bytes of keepalive request bodies polytel keeps in flight at most (default 65536, the browser's
   * cap for the whole page). Lower it when other code on the page sends keepalive requests (beacons, analytics).
   */
  keepaliveBudget?: number;
  /** Browsers, at a page exit: "auto" (default: keepalive fetch, else sendBeacon), "fetch" or "beacon". */
  exitTransport?: 'auto' | 'fetch' | 'beacon';
  /** Any other option of the core, in camelCase (bspScheduleDelayMs, ...: docs/configuration.md). */
  [option: string]: unknown;
}

/** A resolved setting: boolean, number, string, or null when it has no value. */
export type Setting = boolean | number | string | null;

/** What bootstrapWorker() says is running, from the core's resolved configuration. */
export interface WorkerStatus {
  phase: Phase;
  status: 'started' | 'already running' | 'telemetry disabled';
  service: string;
  /** The collector's base URL, the file exporter's directory, or null for "none". */
  endpoint: string | null;
  exporter: string;
  protocol: string;
  compression: string;
  endpoints: { traces: string; logs: string; metrics: string };
  exportDir: string | null;
  /** Why nothing is exported (TELEMETRY_ENABLED not true, ...), or null. */
  notExporting: string | null;
  pid: number | null;
  /** Every option as the core resolved it (snake_case keys, as in docs/configuration.md). */
  config: Record<string, Setting>;
  /** The phase: a status compares loosely equal to it (st == 'full'). */
  toString(): Phase;
}

/** What a page exit sent and dropped (exitFlush()). Bytes are request bodies as sent (after gzip). */
export interface ExitReport {
  /** true for pagehide (what does not fit is dropped); false for hidden (it waits). */
  final: boolean;
  transport: 'fetch' | 'beacon' | 'none';
  /** The keepalive budget, bytes. */
  budget: number;
  /** polytel's keepalive bodies already in flight when the exit began. */
  inFlightBytes: number;
  /**
   * Bodies of requests in flight that were answered during the exit (their room came back and the exit may
   * use it): in flight now = inFlightBytes + sentBytes - releasedBytes = budget - leftBytes.
   */
  releasedBytes: number;
  /** The most keepalive body bytes polytel had in flight at once during the exit (at most budget). */
  peakBytes: number;
  sentRequests: number;
  sentBytes: number;
  /** Log records and spans in the requests sent. */
  sentItems: number;
  /** Requests sent gzip'd. */
  gzipped: number;
  /** Not final: requests that wait for room. */
  heldRequests: number;
  /** Final: requests that could not be sent; their records are counted in stats().droppedExport. */
  droppedRequests: number;
  droppedItems: number;
  /** Room kept for the last metrics snapshot (which counts the drops). */
  reserve: number;
  /** Room left unused (budget minus what is in flight now). */
  leftBytes: number;
  smallestDroppedBytes: number;
  /** Why requests were dropped, with counts. */
  reasons: Record<string, number>;
}

/** OTLP span kinds by name (ASCII case ignored). */
export type SpanKindName = 'internal' | 'server' | 'client' | 'producer' | 'consumer';

/** A span's identity across processes (pt.extract, span.context). Immutable. */
export declare class SpanContext {
  private constructor();
  /** false for a carrier with baggage and no valid traceparent: as a parent it starts a new trace (with the baggage). */
  readonly isValid: boolean;
  /** 32 lowercase hex digits ("" when not valid). */
  readonly traceId: string;
  /** 16 lowercase hex digits ("" when not valid). */
  readonly spanId: string;
  /** W3C trace flags (bit 0: sampled). */
  readonly traceFlags: number;
  readonly sampled: boolean;
  /** true when it came from another process (pt.extract). */
  readonly isRemote: boolean;
  /** W3C tracestate, "" when none. */
  readonly tracestate: string;
  /** W3C baggage entries, decoded. */
  readonly baggage: Readonly<Record<string, string>>;
  /** The traceparent header value, "" when not valid. */
  readonly traceparent: string;
}

/** A link target: a SpanContext or Span, or one with attributes of the link. */
export type Link = SpanContext | Span | { context: SpanContext | Span; attributes?: Attributes };

/** OpenTelemetry's TimeInput: ms since the epoch (or performance.now()), a Date, or [seconds, nanoseconds]. */
export type TimeInput = number | Date | [number, number];

export interface SpanOptions {
  /** The parent: a SpanContext (pt.extract) or a Span; null starts a new trace; default the current span. */
  parent?: SpanContext | Span | null;
  kind?: SpanKindName;
  links?: Link[];
  /** The instrumentation scope (default "polytel" with the library's version). */
  scope?: string | { name: string; version?: string };
  /** Baggage entries added for this span and its children (inject() carries them). */
  baggage?: Record<string, string>;
}

/** A span. It also implements @opentelemetry/api's Span interface (registerOpenTelemetry()). */
export interface Span {
  readonly name: string;
  /** 32 hex digits; "" when not recording. */
  readonly traceId: string;
  /** 16 hex digits; "" when not recording. */
  readonly spanId: string;
  /** Its SpanContext (to inject by hand, to link, as an explicit parent). */
  readonly context: SpanContext;
  readonly baggage: Readonly<Record<string, string>>;
  setAttribute(key: string, value: AttributeValue): this;
  setAttributes(attrs: Attributes): this;
  /** A span event now, or at `time`. */
  addEvent(name: string, attrs?: Attributes | TimeInput, time?: TimeInput): this;
  /** An `exception` event: exception.type, exception.message, exception.stacktrace (the JavaScript stack). */
  recordException(error: unknown, time?: TimeInput): this;
  addLink(link: Link): this;
  addLinks(links: Link[]): this;
  /** 'unset' | 'ok' | 'error', or OpenTelemetry's { code, message }. OK is final. */
  setStatus(status: 'unset' | 'ok' | 'error' | { code: number; message?: string }, message?: string): this;
  updateName(name: string): this;
  /** Ends it (once). pt.span ends its spans itself. */
  end(endTime?: TimeInput): void;
  /** false once ended, and for a span the sampler left out. */
  isRecording(): boolean;
  /** The OpenTelemetry SpanContext. */
  spanContext(): { traceId: string; spanId: string; traceFlags: number; isRemote?: boolean; traceState?: unknown };
}

/** Anything pt.inject writes into: a plain object, or anything with set(name, value) (Headers, Map). */
export type Carrier = Record<string, unknown> | { set(name: string, value: string): unknown };

/** What registerOpenTelemetry() registered with @opentelemetry/api. */
export interface OpenTelemetryRegistration {
  api: unknown;
  tracerProvider: unknown;
  meterProvider: unknown;
  contextManager: unknown;
  propagator: unknown;
  /** Unregisters all four (the API falls back to its no-op defaults). */
  disable(): void;
}

export interface HttpHandlerOptions {
  /** http.route of a request (also the span name's second word). */
  route?: (req: any) => string | undefined;
  /** The instrumentation scope (default "polytel.http"). */
  scope?: string | { name: string; version?: string };
}

export interface Logger {
  readonly target: string;
  trace(msg: string, attrs?: Attributes): void;
  debug(msg: string, attrs?: Attributes): void;
  info(msg: string, attrs?: Attributes): void;
  warn(msg: string, attrs?: Attributes): void;
  error(msg: string, attrs?: Attributes): void;
  fatal(msg: string, attrs?: Attributes): void;
}


export interface Polytel extends Logger {
  /** The core's version (project(VERSION)). */
  readonly version: string;
  phase(): Phase;
  /** A logger whose records carry `target` as their OTLP scope name. */
  logger(target: string): Logger;
  /**
   * Runs fn inside a span and returns its value. A promise result ends the span when it settles.
   * A throw or rejection sets the error status, adds an `exception` event (with the JavaScript stack) and is
   * passed on. Nested spans get the enclosing one as parent: in Node across awaits (AsyncLocalStorage); in
   * browsers only for spans started before fn's first await (a synchronous stack).
   */
  span<T>(name: string, fn: (span: Span) => T, attrs?: Attributes, options?: SpanOptions): T;
  /** The current span (undefined outside one). */
  currentSpan(): Span | undefined;
  /** The baggage in force (the current span's). */
  baggage(): Readonly<Record<string, string>>;
  /**
   * Writes the current span's (or `from`'s) traceparent, and tracestate/baggage when set, into carrier (a new object
   * by default), as OTEL_PROPAGATORS says; returns the carrier.
   */
  inject<C extends Carrier = Record<string, string>>(carrier?: C, from?: Span | SpanContext): C;
  /** The SpanContext in a carrier (header names case-insensitive; malformed values ignored per W3C), or null. */
  extract(carrier: unknown): SpanContext | null;
  /**
   * Node: an http(s) 'request' listener wrapping handler in a `server` span (parent: the request's traceparent;
   * HTTP semantic-convention attributes; ends when the response finishes or the connection closes).
   */
  httpHandler<H extends (req: any, res: any) => unknown>(handler: H, options?: HttpHandlerOptions): H;
  /**
   * Registers polytel with @opentelemetry/api: TracerProvider, MeterProvider, a context manager shared with pt.span,
   * the W3C trace-context + baggage propagator. `api` is required outside Node.
   */
  registerOpenTelemetry(options?: { api?: unknown }): OpenTelemetryRegistration;
  /** A monotonic int64 counter; value defaults to 1, is truncated to an integer, negatives are ignored. */
  counterAdd(name: string, value?: number | bigint, attrs?: Attributes, unit?: string): void;
  gaugeSet(name: string, value: number, attrs?: Attributes, unit?: string): void;
  histogramRecord(name: string, value: number, attrs?: Attributes, unit?: string): void;
  /** Phase 2 with fetch (or the file exporter) driven by this event loop; resolves to what is running. */
  bootstrapWorker(options?: BootstrapOptions): Promise<WorkerStatus>;
  /** What is running: phase, not_exporting and every option, as the core resolved them. */
  resolvedConfig(): Record<string, Setting>;
  /** Resolves to true when everything recorded so far was delivered within timeoutMs (default 10000). */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Flush (bounded), stop, release; phase "none" afterwards. true when everything was delivered. */
  shutdown(timeoutMs?: number): Promise<boolean>;
  /**
   * A page's last chance (the pagehide handler calls it): sends what is pending within the browser's keepalive
   * budget, drops and counts the rest, and sends the metrics snapshot that counts them last. Call it from your own
   * pagehide listener with flushOnExit: false. null where there is nothing to do (Node, phase 1, the file exporter).
   */
  exitFlush(): Promise<ExitReport | null>;
  stats(): Stats;
}

/** Loads the wasm core and runs phase 1. Each call makes an independent core; a program normally makes one. */
export function createPolytel(options?: PolytelOptions): Promise<Polytel>;
export default createPolytel;

/** Retry-After (seconds or an HTTP date) in milliseconds, -1 when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, nowMs?: number): number;

export const levels: Readonly<Record<LevelName, number>>;
