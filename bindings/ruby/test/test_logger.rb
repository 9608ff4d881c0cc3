# test_logger.rb — Polytel::Logger: body is the message, severities mapped, progname attribute, own level respected.
require_relative "test_helper"

class TestLogger < Minitest::Test
  def setup
    @svc = new_service("logger")
    @r = run_ok("logger.rb", env: export_env(@svc, "POLYTEL_LOG_LEVEL" => "debug"))
    @j = @r.json
    @view = receiver.for_service(@svc) { |v| v["logs"].any? { |l| l["body"] == "inside a span" } }
    assert_no_receiver_errors(@view)
  end

  def log(body)
    found = @view["logs"].select { |l| l["body"] == body }
    assert_equal 1, found.size, "#{body.inspect} should arrive exactly once; got bodies #{bodies(@view["logs"]).inspect}"
    found.first
  end

  def test_body_is_the_message_and_severity_is_mapped
    {
      "100% literal %s %d, never a format" => [9, "INFO"],
      "from a block" => [13, "WARN"], "boom" => [17, "ERROR"], "a fatal line" => [21, "FATAL"],
      "an unknown line" => [21, "FATAL"], "kept at WARN" => [13, "WARN"]
    }.each do |body, (num, text)|
      l = log(body)
      assert_equal [num, text], [l["severity_number"], l["severity_text"]], body
      assert_equal "billing", l["scope"], body
    end
  end

  # The core exports INFO and above; POLYTEL_LOG_LEVEL=debug shows DEBUG records on the console.
  def test_debug_goes_to_the_console_only
    assert_includes @r.console, "DEBUG billing: a debug line progname=worker-7"
    refute_includes bodies(@view["logs"]), "a debug line"
    assert_includes @r.console, "ERROR billing: boom progname=worker-7 exception.type=ArgumentError " \
                                "exception.message=boom"
  end

  def test_progname_is_an_attribute
    assert_equal({ "progname" => "worker-7" }, log("a fatal line")["attributes"])
    assert_equal({ "progname" => "custom-prog" }, log("block message, custom progname")["attributes"])
    # ::Logger#add(severity, nil, text): the text is the message, the logger's progname stays the progname.
    assert_equal({ "progname" => "worker-7" }, log("progname used as the message")["attributes"])
  end

  def test_exception_and_non_string_messages
    attrs = log("boom")["attributes"]
    assert_equal "ArgumentError", attrs["exception.type"]
    assert_equal "boom", attrs["exception.message"]
    assert_equal "worker-7", attrs["progname"]
    raised = log("raised and rescued")["attributes"]
    assert_equal "KeyError", raised["exception.type"]
    assert_match(%r{test/workers/logger\.rb:\d+}, raised["exception.stacktrace"])
    assert_equal({ k: 1 }.inspect, log({ k: 1 }.inspect)["body"])
    assert_equal 9, log("raw line")["severity_number"]
  end

  def test_a_record_nothing_wants_is_not_even_built
    r = run_ok("logger.rb", env: export_env(new_service("quiet")))
    assert_nil r.json["debug_block_ran"], "DEBUG is below both the console threshold and export"
    assert_equal true, @j["debug_block_ran"], "with POLYTEL_LOG_LEVEL=debug the console wants it"
  end

  def test_the_loggers_own_level_is_respected
    refute_includes bodies(@view["logs"]), "filtered by the logger's level"
    refute_includes @r.stderr, "filtered by the logger's level"
  end

  def test_default_target_and_log_device
    assert_equal "ruby.logger", @j["default_target"]
    assert_equal "ruby.logger", log("default target")["scope"]
    assert_equal "both", log("to the device and to polytel")["scope"]
    assert_match(/\AI, \[\S+ #\d+\]  INFO -- : to the device and to polytel\n\z/, @j["device"])
  end

  def test_records_in_a_span_carry_its_ids
    l = log("inside a span")
    assert_equal @j["trace_id"], l["trace_id"]
    assert_equal @j["span_id"], l["span_id"]
    assert_equal "", log("kept at WARN")["span_id"]
  end
end
