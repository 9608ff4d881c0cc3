# polytel.rb — the Ruby layer over polytel_ext: bootstrap_worker, flush/shutdown, fork and at_exit handling.
#
# Loading the extension runs phase 1 (console logging; with TELEMETRY_ENABLED=true, recording is
# deferred until bootstrap_worker). Logging, spans and metrics are C methods defined by the
# extension itself (Polytel.info, Polytel.span, Polytel.counter_add, ...): no Ruby frame on the
# hot path.
require "polytel/polytel_ext"

module Polytel
  # The core's option table: names, variables, defaults (Polytel._options); the core checks every value.
  OPTION_DEFAULTS = _options.to_h { |key, _env, default| [key, default] }.freeze
  DEFAULT_EXIT_TIMEOUT_MS = OPTION_DEFAULTS.fetch(:exit_timeout_ms)

  # Loaded on first use, so `require "polytel"` does not pay for the stdlib logger.
  autoload :Logger, "polytel/logger"

  # bootstrap_worker keywords: the core's options; anything else is an ArgumentError.
  BOOTSTRAP_OPTIONS = OPTION_DEFAULTS.keys.freeze
  STRING_OPTIONS = _options.filter_map { |key, _env, default| key if default.nil? || default.is_a?(String) }.freeze
  # The words the core takes for its choices ({ "http/json" => 2, ... }).
  PROTOCOLS = _choices("protocol").freeze
  EXPORTERS = _choices("exporter").freeze
  CONSOLES = _choices("console").freeze
  CONSOLE_FORMATS = _choices("console_format").freeze
  COMPRESSIONS = _choices("compression").freeze
  LEVEL_NAMES = _choices("console_level").freeze

  class << self
    # Phase 2: starts a polytel-owned libuv loop thread and batched export. Keyword overrides win
    # over the environment (the core's options, BOOTSTRAP_OPTIONS; nil leaves one to the environment).
    # Returns a Hash saying what is running, as the core resolved it:
    #   { phase: :full, status: "started", service: "worker", endpoint: "http://...", exporter: "otlp",
    #     protocol: "http/protobuf", compression: "none", endpoints: { traces: ..., logs: ..., metrics: ... },
    #     export_dir: nil, not_exporting: nil, pid: 1234, config: { every option } }
    # status is "started", "already running" (a repeated call: nothing changes, nothing raised),
    # "telemetry disabled" (TELEMETRY_ENABLED is not true: console only) or "error" (then :error
    # says why); not_exporting says why nothing is exported. Unknown keywords and unusable values
    # raise ArgumentError.
    def bootstrap_worker(**overrides)
      after_fork_child if @pid != Process.pid # Process.daemon forks without Process._fork
      rc = _bootstrap(option_pairs(overrides))
      ph = phase
      status =
        case _err_name(rc)
        when "POLYTEL_OK" then ph == :full ? "started" : "telemetry disabled"
        when "POLYTEL_EALREADY" then "already running"
        else "error"
        end
      result = worker_status(status)
      result[:error] = "#{_err_name(rc)}: #{_strerror(rc)}" if status == "error"
      result
    end

    # Hands off every thread's pending events and waits up to timeout_ms for delivery, without the
    # GVL. true when nothing is pending afterwards.
    def flush(timeout_ms = 5000)
      _flush(Integer(timeout_ms)).zero?
    end

    # Flushes, stops the loop thread and releases everything, within timeout_ms (an unreachable
    # collector costs at most that). true only when everything recorded was delivered. The process
    # may bootstrap again afterwards.
    def shutdown(timeout_ms = 5000)
      _shutdown(Integer(timeout_ms)).zero?
    end

    # The bound on the at_exit shutdown: POLYTEL_EXIT_TIMEOUT_MS as the core resolved it (default 5000).
    def exit_timeout_ms
      resolved_config[:exit_timeout_ms]
    end

    private

    # Keyword arguments as the text their environment variables would hold.
    def option_pairs(overrides)
      unknown = overrides.keys - BOOTSTRAP_OPTIONS
      unless unknown.empty?
        raise ArgumentError, "polytel: unknown bootstrap_worker option(s) #{unknown.map(&:inspect).join(", ")}; " \
                             "known: #{BOOTSTRAP_OPTIONS.join(", ")}"
      end
      overrides.filter_map do |key, value|
        next if value.nil? # unset: the environment, then the default
        [key.to_s, option_text(key, value)]
      end
    end

    def option_text(key, value)
      case value
      when true, false, Integer, String, Symbol then value.to_s
      when Hash then pairs(key, value)
      else
        return value.to_path if value.respond_to?(:to_path)
        raise ArgumentError, "polytel: bootstrap_worker(#{key}: #{value.class}): expected a String, Integer, " \
                             "true/false#{key == :resource_attributes || key == :headers ? " or a Hash" : ""}"
      end
    end

    # OTEL_RESOURCE_ATTRIBUTES syntax (the core percent-decodes its values) or OTEL_EXPORTER_OTLP_HEADERS.
    def pairs(key, value)
      unless key == :resource_attributes || key == :headers
        raise ArgumentError, "polytel: bootstrap_worker(#{key}:): a Hash is only taken by resource_attributes and headers"
      end
      value.map do |k, v|
        k = k.to_s
        v = v.to_s
        next "#{pct(k)}=#{pct(v)}" if key == :resource_attributes
        if k.include?(",") || k.include?("=") || v.include?(",")
          raise ArgumentError, "polytel: bootstrap_worker(#{key}:): #{k.inspect} cannot hold ',' (or '=' in the name)"
        end
        "#{k}=#{v}"
      end.join(",")
    end

    def pct(s)
      s.gsub("%", "%25").gsub(",", "%2C").gsub("=", "%3D")
    end

    # What is running, from the core's resolved configuration (the same keys in every binding).
    def worker_status(status)
      cfg = resolved_config
      {
        phase: cfg[:phase].to_sym, status: status, service: cfg[:service_name], endpoint: cfg[:destination],
        exporter: cfg[:exporter], protocol: cfg[:protocol], compression: cfg[:compression],
        endpoints: %i[traces logs metrics].to_h { |s| [s, cfg[:"#{s}_endpoint"]] },
        export_dir: cfg[:exporter] == "file" ? cfg[:export_dir] : nil, not_exporting: cfg[:not_exporting],
        pid: Process.pid, config: cfg
      }
    end

    # at_exit: deliver what is pending, bounded, in the parent and in fork children alike. Telemetry
    # must never change how the program exits, so nothing escapes from here.
    def exit_hook
      return unless phase == :full || phase == :deferred
      _shutdown(exit_timeout_ms)
    rescue Exception # rubocop:disable Lint/RescueException
      nil
    end

    # The C side resets itself in the core's pthread_atfork child handler (new process identity,
    # the parent's buffered events discarded, back to phase 1). Spans opened before the fork are
    # left to the parent (the extension counts fork generations).
    def after_fork_child
      @pid = Process.pid
    end
  end

  # Process._fork (Ruby >= 3.1) is the method Kernel#fork, Process.fork and IO.popen("-") go
  # through. Process.daemon does not: bootstrap_worker notices the new pid itself.
  module ForkHook
    def _fork
      pid = super
      Polytel.send(:after_fork_child) if pid.zero?
      pid
    end
  end
  Process.singleton_class.prepend(ForkHook) if Process.respond_to?(:_fork)

  @pid = Process.pid
  # Registered at require time, so it runs after the at_exit handlers of code loaded later (which
  # may still log). Inherited by fork children, which run it when they exit normally (not exit!).
  at_exit { Polytel.send(:exit_hook) }
end
