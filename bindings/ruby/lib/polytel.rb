# polytel.rb — the Ruby layer over polytel_ext: bootstrap_worker, flush/shutdown, fork and at_exit handling.
#
# Loading the extension runs phase 1 (console logging; with TELEMETRY_ENABLED=true, recording is
# deferred until bootstrap_worker). Logging, spans and metrics are C methods defined by the
# extension itself (Polytel.info, Polytel.span, Polytel.counter_add, ...): no Ruby frame on the
# hot path.
require "polytel/polytel_ext"

module Polytel
  DEFAULT_EXIT_TIMEOUT_MS = 5000

  # Loaded on first use, so `require "polytel"` does not pay for the stdlib logger.
  autoload :Logger, "polytel/logger"

  # bootstrap_worker keywords, as in every binding; anything else is an ArgumentError.
  STRING_OPTIONS = %i[
    service_name service_version endpoint traces_endpoint logs_endpoint metrics_endpoint certificate export_dir
  ].freeze
  BOOTSTRAP_OPTIONS = (STRING_OPTIONS + %i[
    resource_attributes headers protocol exporter compression timeout_ms telemetry_enabled sdk_disabled
    console console_format console_level max_memory_bytes use_env
  ]).freeze

  PROTOCOLS = { "http/protobuf" => 1, "protobuf" => 1, "http/json" => 2, "json" => 2 }.freeze
  EXPORTERS = { "otlp" => 1, "file" => 2, "none" => 3 }.freeze
  CONSOLES = { "stderr" => 1, "stdout" => 2, "off" => 3 }.freeze
  CONSOLE_FORMATS = { "text" => 1, "json" => 2 }.freeze
  COMPRESSIONS = { "none" => 0, "gzip" => 1, "zstd" => 2 }.freeze
  LEVEL_NAMES = { "trace" => 1, "debug" => 5, "info" => 9, "warn" => 13, "warning" => 13, "error" => 17,
                  "fatal" => 21, "off" => 255 }.freeze

  class << self
    # Phase 2: starts a polytel-owned libuv loop thread and batched export. Keyword overrides win
    # over the environment (see BOOTSTRAP_OPTIONS). Returns a Hash:
    #   { phase: :full, status: "started", endpoint: "http://...", service: "worker", pid: 1234 }
    # status is "started", "already running" (a repeated call: nothing changes, nothing raised),
    # "telemetry disabled" (TELEMETRY_ENABLED is not true: console only) or "error" (then :error
    # says why). Unknown keywords and unusable values raise ArgumentError.
    def bootstrap_worker(**overrides)
      after_fork_child if @pid != Process.pid # Process.daemon forks without Process._fork
      opts = normalize_bootstrap(overrides)
      rc = _bootstrap(opts)
      ph = phase
      status =
        case _err_name(rc)
        when "POLYTEL_OK" then ph == :full ? "started" : "telemetry disabled"
        when "POLYTEL_EALREADY" then "already running"
        else "error"
        end
      # A repeated call reports where the running pipeline exports, not what this call asked for.
      endpoint, service = status == "already running" && @running ? @running : display_target(overrides, opts)
      @running = [endpoint, service] if status == "started"
      result = { phase: ph, status: status, endpoint: endpoint, service: service, pid: Process.pid }
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
      @running = nil
      _shutdown(Integer(timeout_ms)).zero?
    end

    # The bound on the at_exit shutdown (POLYTEL_EXIT_TIMEOUT_MS, default 5000).
    attr_reader :exit_timeout_ms

    private

    def normalize_bootstrap(overrides)
      unknown = overrides.keys - BOOTSTRAP_OPTIONS
      unless unknown.empty?
        raise ArgumentError, "polytel: unknown bootstrap_worker option(s) #{unknown.map(&:inspect).join(", ")}; " \
                             "known: #{BOOTSTRAP_OPTIONS.join(", ")}"
      end
      out = {}
      overrides.each do |key, value|
        next if value.nil? # unset: the environment, then the default
        out[key] =
          case key
          when *STRING_OPTIONS then value.to_s
          when :resource_attributes then pairs(key, value, encode: true)
          when :headers then pairs(key, value, encode: false)
          when :protocol then choice(key, value, PROTOCOLS)
          when :exporter then choice(key, value, EXPORTERS)
          when :console then choice(key, value, CONSOLES)
          when :console_format then choice(key, value, CONSOLE_FORMATS)
          when :console_level then value.is_a?(Integer) ? int(key, value, 1, 255) : choice(key, value, LEVEL_NAMES)
          when :timeout_ms then int(key, value, 0, 2**31 - 1)
          when :max_memory_bytes then int(key, value, 0, 2**62)
          when :compression
            next out[:compression_gzip] = (value ? 1 : 0) if value == true || value == false
            next out[:compression_gzip] = choice(key, value, COMPRESSIONS)
          else tristate(key, value) # telemetry_enabled, sdk_disabled, use_env
          end
      end
      out
    end

    def choice(key, value, table)
      table.fetch(value.to_s.strip.downcase) do
        raise ArgumentError, "polytel: bootstrap_worker(#{key}: #{value.inspect}): expected one of #{table.keys.join(", ")}"
      end
    end

    def tristate(key, value)
      return 1 if value == true || value == 1
      return 0 if value == false || value == 0
      raise ArgumentError, "polytel: bootstrap_worker(#{key}: #{value.inspect}): expected true or false"
    end

    def int(key, value, lo, hi)
      return value if value.is_a?(Integer) && value.between?(lo, hi)
      raise ArgumentError, "polytel: bootstrap_worker(#{key}: #{value.inspect}): expected an Integer from #{lo} to #{hi}"
    end

    # OTEL_RESOURCE_ATTRIBUTES syntax (the core percent-decodes its values) or OTEL_EXPORTER_OTLP_HEADERS.
    def pairs(key, value, encode:)
      return value if value.is_a?(String)
      raise ArgumentError, "polytel: bootstrap_worker(#{key}:): expected a String \"k=v,...\" or a Hash" unless value.is_a?(Hash)
      value.map do |k, v|
        k = k.to_s
        v = v.to_s
        if encode
          "#{pct(k)}=#{pct(v)}"
        else
          if k.include?(",") || k.include?("=") || v.include?(",")
            raise ArgumentError, "polytel: bootstrap_worker(#{key}:): #{k.inspect} cannot hold ',' (or '=' in the name)"
          end
          "#{k}=#{v}"
        end
      end.join(",")
    end

    def pct(s)
      s.gsub("%", "%25").gsub(",", "%2C").gsub("=", "%3D")
    end

    def env(name, use_env)
      v = use_env == 0 ? nil : ENV[name]
      v.nil? || v.empty? ? nil : v
    end

    # Where the telemetry goes and under which service, for the result Hash (the core prints the same).
    def display_target(overrides, opts)
      use_env = opts.fetch(:use_env, 1)
      exporter = (overrides[:exporter] || env("POLYTEL_EXPORTER", use_env) || "otlp").to_s.strip.downcase
      endpoint =
        case exporter
        when "none" then nil
        when "file" then opts[:export_dir] || env("POLYTEL_EXPORT_DIR", use_env)
        else opts[:endpoint] || env("OTEL_EXPORTER_OTLP_ENDPOINT", use_env) || "http://localhost:4318"
        end
      service = opts[:service_name] || env("OTEL_SERVICE_NAME", use_env)
      service ||= (opts[:resource_attributes] || env("OTEL_RESOURCE_ATTRIBUTES", use_env) || "").split(",").map do |pair|
        k, v = pair.split("=", 2)
        v.strip if k.to_s.strip == "service.name" && v && !v.strip.empty?
      end.compact.first
      service ||= exe_name
      [endpoint, service]
    end

    def exe_name
      File.basename(File.readlink("/proc/self/exe"))
    rescue SystemCallError, NotImplementedError
      File.basename(RbConfig.ruby)
    end

    def parse_exit_timeout(raw)
      return DEFAULT_EXIT_TIMEOUT_MS if raw.nil? || raw.strip.empty?
      ms = Integer(raw.strip, 10, exception: false)
      return ms if ms && ms >= 0
      log(:warn, "polytel", "POLYTEL_EXIT_TIMEOUT_MS=#{raw.inspect} is not a number of milliseconds; " \
                            "using #{DEFAULT_EXIT_TIMEOUT_MS}")
      DEFAULT_EXIT_TIMEOUT_MS
    end

    # at_exit: deliver what is pending, bounded, in the parent and in fork children alike. Telemetry
    # must never change how the program exits, so nothing escapes from here.
    def exit_hook
      return unless phase == :full || phase == :deferred
      _shutdown(@exit_timeout_ms)
    rescue Exception # rubocop:disable Lint/RescueException
      nil
    end

    # The C side resets itself in the core's pthread_atfork child handler (new process identity,
    # the parent's buffered events discarded, back to phase 1). Spans opened before the fork are
    # left to the parent (the extension counts fork generations). The Ruby side forgets the parent's
    # running pipeline, so the child's own bootstrap_worker reports "started".
    def after_fork_child
      @pid = Process.pid
      @running = nil
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
  @exit_timeout_ms = parse_exit_timeout(ENV["POLYTEL_EXIT_TIMEOUT_MS"])
  # Registered at require time, so it runs after the at_exit handlers of code loaded later (which
  # may still log). Inherited by fork children, which run it when they exit normally (not exit!).
  at_exit { Polytel.send(:exit_hook) }
end
