# logger.rb — Polytel::Logger, a ::Logger whose records also become polytel log records.
require "logger"

module Polytel
  # A drop-in ::Logger. Each record that passes the logger's own level is sent to polytel with:
  # - body: the message itself (not the formatted line); an exception gives its message, plus
  #   exception.type / exception.message / exception.stacktrace attributes; other objects, #inspect;
  # - severity: DEBUG→DEBUG(5) INFO→INFO(9) WARN→WARN(13) ERROR→ERROR(17) FATAL→FATAL(21)
  #   UNKNOWN→FATAL(21);
  # - progname: the "progname" attribute;
  # - target (the OTLP scope name): `target:` given to new, "ruby.logger" by default.
  # With no log device (the default) polytel's console is the only local output; given one, the
  # formatted line is written there as by ::Logger.
  class Logger < ::Logger
    SEVERITY_LEVELS = [5, 9, 13, 17, 21, 21].freeze # ::Logger DEBUG..UNKNOWN → polytel levels
    DEFAULT_TARGET = "ruby.logger"

    attr_reader :target

    def initialize(logdev = nil, *args, target: DEFAULT_TARGET, **kwargs)
      super(logdev, *args, **kwargs)
      self.target = target
    end

    def target=(name)
      @target = name.to_s.dup.freeze
    end

    def add(severity, message = nil, progname = nil)
      severity ||= UNKNOWN
      return true if severity < level
      # Nothing would print or record it (e.g. DEBUG below POLYTEL_LOG_LEVEL): skip building the message.
      polytel_level = SEVERITY_LEVELS[severity.clamp(0, 5)]
      return true if @logdev.nil? && !Polytel.level_enabled?(polytel_level)

      progname = @progname if progname.nil?
      if message.nil?
        if block_given?
          message = yield
        else
          message = progname
          progname = @progname
        end
      end
      polytel_record(polytel_level, message, progname)
      @logdev&.write(format_message(format_severity(severity), Time.now, progname, message))
      true
    end
    alias log add

    # Raw writes (Rack's CommonLogger uses these) are records too, at INFO, without the newline.
    def <<(msg)
      Polytel._log(9, @target, msg.to_s.chomp, nil)
      @logdev&.write(msg)
    end

    private

    def polytel_record(level, message, progname)
      attrs = progname.nil? ? nil : { "progname" => progname }
      case message
      when ::String
        body = message
      when ::Exception
        body = message.message
        attrs = (attrs || {}).merge!("exception.type" => message.class.name, "exception.message" => body)
        attrs["exception.stacktrace"] = message.backtrace.join("\n") if message.backtrace
      else
        body = message.inspect
      end
      Polytel._log(level, @target, body, attrs)
    end
  end
end
