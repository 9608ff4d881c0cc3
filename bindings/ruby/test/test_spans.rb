# test_spans.rb — Polytel.span: nesting and parent links, values, exceptions, every way out of a block.
require_relative "test_helper"

class TestSpans < Minitest::Test
  def setup
    @svc = new_service("spans")
    @r = run_ok("spans.rb", env: export_env(@svc))
    @j = @r.json
    @view = receiver.for_service(@svc) { |v| v["spans"].any? { |s| s["name"] == "thread-root" } }
    assert_no_receiver_errors(@view)
    @spans = @view["spans"]
  end

  def span(name)
    found = @spans.select { |s| s["name"] == name }
    assert_equal 1, found.size, "span #{name} should arrive exactly once; got #{@spans.map { |s| s["name"] }.inspect}"
    found.first
  end

  def test_nested_spans_link_to_their_parents
    outer, inner, innermost = span("outer"), span("inner"), span("innermost")
    assert_equal "", outer["parent_span_id"]
    assert_equal outer["span_id"], inner["parent_span_id"]
    assert_equal inner["span_id"], innermost["parent_span_id"]
    assert_equal [outer["trace_id"]] * 3, [outer, inner, innermost].map { |s| s["trace_id"] }
    assert_equal @j["outer"]["trace_id"], outer["trace_id"]
    assert_equal @j["outer"]["span_id"], outer["span_id"]
    assert_nil @j["outer"]["parent"]
    assert outer["start_ns"] <= inner["start_ns"] && inner["end_ns"] <= outer["end_ns"]
    assert_equal "polytel", outer["scope"]
  end

  def test_block_value_attributes_and_current_span
    assert_equal 42, @j["value"]
    assert_equal({ "job" => "import", "n" => 3 }, span("outer")["attributes"])
    assert_equal({ "late" => 42 }, span("inner")["attributes"])
    assert_equal 0, span("outer")["status_code"]
    assert @j["inner_current"]
    assert_nil @j["current_after"]
    assert_nil @j["current_after_jumps"]
  end

  def test_exception_sets_error_status_ends_the_span_and_reraises
    failing, child = span("failing"), span("failing-child")
    [failing, child].each do |s|
      assert_equal 2, s["status_code"]
      assert_equal "bad input", s["status_message"]
      # The semantic conventions' exception event, not attributes of the span.
      assert_equal({}, s["attributes"])
      assert_equal ["exception"], s["events"].map { |e| e["name"] }
      ev = s["events"][0]["attributes"]
      assert_equal %w[exception.message exception.stacktrace exception.type], ev.keys.sort
      assert_equal ["ArgumentError", "bad input"], ev.values_at("exception.type", "exception.message")
      # Ruby's own backtrace text: the raising line of the worker first.
      assert_match(/\A.*spans\.rb:\d+:in `.*': bad input \(ArgumentError\)$/, ev["exception.stacktrace"].lines.first)
      assert_operator ev["exception.stacktrace"].lines.size, :>, 1
      assert s["start_ns"] <= s["events"][0]["time_ns"] && s["events"][0]["time_ns"] <= s["end_ns"]
    end
    assert_equal failing["span_id"], child["parent_span_id"]
    assert @j["rescued_same"], "the very exception object is re-raised"
    assert @j["backtrace_kept"]
    assert @j["cause_kept"]
    assert_equal "RuntimeError", span("with-cause")["events"][0]["attributes"]["exception.type"]
  end

  # An exception whose #message raises: the span still ends (ERROR, no attributes, no event), the original
  # exception still propagates.
  def test_exception_with_a_broken_message
    assert @j["weird_rescued"]
    s = span("weird-error")
    assert_equal [2, {}, []], [s["status_code"], s["attributes"], s["events"]]
  end

  def test_break_throw_return_and_kill_end_the_span_without_error
    %w[broken-out thrown-out returned-from killed].each { |n| assert_equal 0, span(n)["status_code"], n }
    assert_equal "early", @j["returned"]
  end

  def test_fibers_and_threads
    # Thread#[] is fiber-local: a new Fiber starts without a current span, like a new Thread.
    refute @j["fiber_sees_parent"]
    assert_equal "", span("in-fiber")["parent_span_id"]
    assert_equal "", span("thread-root")["parent_span_id"]
    # with_span(nil) detaches: a new trace even inside a span.
    assert_equal "", span("detached")["parent_span_id"]
    refute_equal span("pool-parent")["trace_id"], span("detached")["trace_id"]
    # with_span carries a span into another thread.
    assert_equal span("pool-parent")["span_id"], span("pool-child")["parent_span_id"]
    assert_equal span("pool-parent")["trace_id"], span("pool-child")["trace_id"]
  end

  def test_set_status
    assert_equal [1, ""], [span("status-ok")["status_code"], span("status-ok")["status_message"]]
    assert_equal [2, "went wrong"], [span("status-error")["status_code"], span("status-error")["status_message"]]
  end

  # Attribute values are typed when they can be, else their to_s; a to_s that raises never makes a
  # telemetry call raise.
  def test_attribute_values_of_any_type
    assert_equal({ "state" => "done", "n" => 1, "extra" => 2**62 }, span("overridden")["attributes"])
    assert_equal({ "obj" => "<unprintable Object>", "sym" => "val", "big" => (2**70).to_s, "i64" => -2**63, "arr" => [1, 2],
                   "f" => 1.5, "t" => true, "str key" => "v" }, span("odd-attrs")["attributes"])
    odd = @view["logs"].find { |l| l["body"] == "odd log" }
    assert_equal({ "obj" => "<unprintable Object>", "big" => (-2**64).to_s }, odd["attributes"])
    assert_equal 1, @view["logs"].count { |l| l["body"] == "<unprintable Object>" }
  end

  def test_a_block_without_parameters_and_current_span
    lazy = span("lazy")
    assert @j["lazy_same"], "current_span makes one object for the span, not one per call"
    assert_equal @j["lazy"]["span_id"], lazy["span_id"]
    assert_equal false, @j["lazy"]["recording_after"]
    assert_equal [{ "n" => 1, "via" => "current_span" }, 1], [lazy["attributes"], lazy["status_code"]]
    assert_equal lazy["span_id"], span("lazy-child")["parent_span_id"]
    raised = span("lazy-raise")
    assert_equal "lazy", @j["lazy_raise"]
    assert_equal [2, "lazy", %w[before exception]], [raised["status_code"], raised["status_message"], raised["events"].map { |e| e["name"] }]
    ids = (0..20).map { |i| span("deep-#{i}") }
    ids.each_cons(2) { |child, parent| assert_equal parent["span_id"], child["parent_span_id"] }
    assert_equal ids[1]["span_id"], @j["deep_parent"]
    ended = span("ended-with-to_s")
    assert_equal({ "v" => "made in a span" }, ended["attributes"])
    assert_equal "", ended["parent_span_id"]
    assert_equal "", span("in-to_s")["parent_span_id"], "ended spans are not the parent of what their attributes run"
    20.times { |i| assert_equal ended["span_id"], span("sibling-#{i}")["parent_span_id"] }
  end

  def test_logs_inside_a_span_carry_its_ids
    l = @view["logs"].find { |x| x["body"] == "inside outer" }
    refute_nil l
    assert_equal span("outer")["span_id"], l["span_id"]
    assert_equal span("outer")["trace_id"], l["trace_id"]
  end
end
