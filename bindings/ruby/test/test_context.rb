# test_context.rb — Polytel.extract/inject (W3C Trace Context and Baggage), parents, kinds, events, exceptions, links, arrays, scopes, sampling.
require_relative "test_helper"

class TestContext < Minitest::Test
  REMOTE_TRACE = "0af7651916cd43dd8448eb211c80319c".freeze
  REMOTE_SPAN = "b7ad6b7169203331".freeze

  def run_context
    @svc = new_service("context")
    @j = run_ok("context.rb", env: export_env(@svc)).json
    view = receiver.for_service(@svc) { |v| v["spans"].any? { |s| s["name"] == "root-again" } }
    assert_no_receiver_errors(view)
    @spans = view["spans"]
  end

  def span(name)
    found = @spans.select { |s| s["name"] == name }
    assert_equal 1, found.size, "span #{name} should arrive exactly once; got #{@spans.map { |s| s["name"] }.inspect}"
    found.first
  end

  def test_extract_reads_any_case_and_ignores_malformed_headers
    run_context
    assert_equal({ "trace_id" => REMOTE_TRACE, "span_id" => REMOTE_SPAN, "sampled" => true, "remote" => true,
                   "tracestate" => "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
                   "traceparent" => "00-#{REMOTE_TRACE}-#{REMOTE_SPAN}-01", "frozen" => true,
                   "class" => "Polytel::SpanContext" }, @j["extracted"])
    assert_equal REMOTE_SPAN, @j["symbol_key"]
    @j["malformed"].each { |what, ignored| assert ignored, "a traceparent with #{what} must be ignored" }
    assert @j["not a string"]
    assert @j["none"]
    assert_equal REMOTE_SPAN, @j["future version"]
    # More than 32 tracestate members: the tracestate is dropped (W3C), the traceparent kept.
    assert_equal [REMOTE_SPAN, nil], @j["33 members"]
    assert_nil @j["bad tracestate"]
  end

  def test_remote_parent_inject_and_with_span
    run_context
    consume = span("consume")
    assert_equal [REMOTE_TRACE, REMOTE_SPAN, 5], consume.values_at("trace_id", "parent_span_id", "kind")
    assert_equal "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", consume["trace_state"]
    assert_equal({ "job.id" => 7 }, consume["attributes"])
    tp = "00-#{REMOTE_TRACE}-#{consume["span_id"]}-01"
    assert_equal({ "traceparent" => tp, "tracestate" => "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" }, @j["consume"]["inject"])
    assert_equal [tp, "Polytel::SpanContext"], @j["consume"].values_at("context", "context_class")
    assert_equal({ "other" => "kept", "traceparent" => tp, "tracestate" => "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" },
                 @j["inject_into"])
    assert_equal consume["span_id"], span("child")["parent_span_id"]
    assert_equal "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", span("child")["trace_state"]
    assert_equal({}, @j["inject_outside"], "no current span: nothing to inject")
    assert_equal "00-#{REMOTE_TRACE}-#{REMOTE_SPAN}-01", @j["with_span_inject"]
    assert_equal [REMOTE_TRACE, REMOTE_SPAN], span("attached").values_at("trace_id", "parent_span_id")
    assert_equal [{ "k" => "v" }, { "k" => "v", "k2" => "2" }, { "k" => "v", "k2" => "2" }, true], @j["baggage"]
  end

  def test_kinds
    run_context
    %w[internal server client producer consumer].each_with_index do |k, i|
      assert_equal i + 1, span("kind-#{k}")["kind"], "kind #{k}"
    end
    assert_equal 1, span("events")["kind"], "the default kind is internal"
  end

  def test_events_and_exceptions
    run_context
    ev = span("events")
    assert_equal 0, ev["status_code"], "record_exception does not set the status"
    assert_equal %w[cache.miss at exception], ev["events"].map { |e| e["name"] }
    assert_equal({ "key" => "user:1", "tries" => 2 }, ev["events"][0]["attributes"])
    assert_equal 1_700_000_000_123_456_789, ev["events"][1]["time_ns"]
    exc = ev["events"][2]["attributes"]
    assert_equal ["ArgumentError", 'invalid value for Integer(): "nope"', true],
                 exc.values_at("exception.type", "exception.message", "handled")
    assert_match(/context\.rb:\d+:in `Integer': invalid value/, exc["exception.stacktrace"])
    assert_match(/^\tfrom .*context\.rb:\d+:in `block in <main>'$/, exc["exception.stacktrace"])

    raising = span("raising")
    assert_equal "disk gone", @j["reraised"]
    assert_equal [2, "disk gone", 2], raising.values_at("status_code", "status_message", "kind")
    assert_equal ["exception"], raising["events"].map { |e| e["name"] }
    a = raising["events"][0]["attributes"]
    assert_equal %w[IOError disk\ gone], a.values_at("exception.type", "exception.message")
    assert_match(/\A.*context\.rb:\d+:in `block in <main>': disk gone \(IOError\)\n\tfrom /, a["exception.stacktrace"])
  end

  def test_arrays_links_scopes
    run_context
    assert_equal({ "ints" => [1, 2, 3], "strs" => %w[a b], "syms" => %w[x y], "floats" => [0.5, 1.5],
                   "bools" => [true, false], "empty" => [], "mixed" => '[1, "a"]', "from.hash" => "h" },
                 span("arrays")["attributes"])
    batch = span("batch")
    assert_equal [[REMOTE_TRACE, REMOTE_SPAN, {}], ["1" * 32, "2" * 16, { "job" => 2 }]],
                 batch["links"].map { |l| l.values_at("trace_id", "span_id", "attributes") }
    assert_equal %w[billing 1.2.0], batch.values_at("scope", "scope_version")
    assert_equal "billing", span("scoped")["scope"]
    assert_equal ["payments", "2.0", 3], span("via-tracer").values_at("scope", "scope_version", "kind")
    assert_equal "polytel", span("arrays")["scope"]
    root = span("root-again")
    assert_equal "", root["parent_span_id"], "parent: false starts a new trace"
    refute_equal span("scoped")["trace_id"], root["trace_id"]
    assert_equal @j["root_again_trace"], root["trace_id"]
  end

  def test_bad_keywords_raise_one_clear_error
    run_context
    kind, parent, links, attrs, scope = @j["errors"]
    assert_equal "ArgumentError: polytel: span kind must be :internal, :server, :client, :producer or :consumer, not :bogus", kind
    assert_match(/\ATypeError: polytel: span parent: must be a Polytel::SpanContext or Polytel::Span .*not String\z/, parent)
    assert_match(/\ATypeError: polytel: span links\[0\]: .*not Integer\z/, links)
    assert_equal "TypeError: polytel: span attributes: must be a Hash, not Array", attrs
    assert_match(/\ATypeError: polytel: span scope: .*not Integer\z/, scope)
    assert_nil @j["current_after_errors"]
    %w[x].each { |n| assert_empty @spans.select { |s| s["name"] == n }, "a refused span is not started" }
  end

  def test_unsampled_spans_propagate_but_are_not_exported
    svc = new_service("sampling")
    j = run_ok("sampling.rb", env: export_env(svc, "OTEL_TRACES_SAMPLER" => "parentbased_always_off")).json
    refute j["recording"]
    refute j["sampled"]
    refute j["child_sampled"]
    assert_match(/\A00-\h{32}-\h{16}-00\z/, j["inject"], "the unsampled flag travels")
    assert j["raised"]
    refute j["under_unsampled"]
    assert j["under_sampled"], "parentbased follows a sampled parent"
    # unsampled, its child, unsampled-raising, under-unsampled: left out and counted apart.
    assert_equal 4, j["stats"]["sampled_out"]
    view = receiver.for_service(svc) { |v| v["spans"].any? { |s| s["name"] == "under-sampled" } }
    assert_equal ["under-sampled"], view["spans"].map { |s| s["name"] }
  end

  def test_propagators_none
    svc = new_service("noprop")
    code = <<~RUBY
      require "json"
      require "polytel"
      out = Polytel.span("s") { Polytel.inject }
      ctx = Polytel.extract({ "traceparent" => "00-#{REMOTE_TRACE}-#{REMOTE_SPAN}-01" })
      puts JSON.dump({ "inject" => out, "extract" => ctx.nil? })
    RUBY
    j = run_ok(code: code, env: export_env(svc, enabled: nil, "OTEL_PROPAGATORS" => "none")).json
    assert_equal({ "inject" => {}, "extract" => true }, j)
  end

  # W3C baggage through the core's codec: extract, inheritance by children, with_baggage, inject, on the wire.
  def test_baggage
    svc = new_service("baggage")
    code = <<~RUBY
      require "json"
      require "polytel"
      Polytel.bootstrap_worker
      tp = "00-#{REMOTE_TRACE}-#{REMOTE_SPAN}-01"
      ctx = Polytel.extract({ "Traceparent" => tp, "BAGGAGE" => "tenant=acme%20co, bad member ,user.id=7;p=1" })
      out = { "extracted" => ctx.baggage, "frozen" => ctx.baggage.frozen? }
      Polytel.span("consume", parent: ctx, kind: :consumer) do |sp|
        out["span"] = sp.baggage
        out["current"] = Polytel.baggage
        Polytel.with_baggage(region: :eu, "user.id" => nil) do
          out["inner"] = Polytel.baggage
          out["inject_inner"] = Polytel.inject
          Polytel.span("child") { |c| out["child"] = [c.baggage, c.parent_span_id == sp.span_id] }
        end
        out["inject"] = Polytel.inject
      end
      only = Polytel.extract({ "baggage" => "k=v" })
      out["only"] = [only.valid?, only.baggage]
      Polytel.span("fresh", parent: only) { |s| out["fresh"] = [s.baggage, s.trace_id != REMOTE_TRACE] }
      out["outside"] = [Polytel.baggage, Polytel.inject]
      out["none"] = Polytel.extract({ "baggage" => "no equals sign" }).nil?
      Polytel.with_baggage("x" => "y") { out["no_span"] = Polytel.inject }
      begin
        Polytel.with_baggage("bad key" => "1") { out["ran"] = true }
      rescue ArgumentError => e
        out["error"] = e.message
      end
      puts JSON.dump(out)
    RUBY
    code = code.sub("REMOTE_TRACE", REMOTE_TRACE.inspect)
    j = run_ok(code: code, env: export_env(svc)).json
    assert_equal({ "tenant" => "acme co", "user.id" => "7" }, j["extracted"])
    assert j["frozen"]
    assert_equal j["extracted"], j["span"], "a span under the extracted context has its baggage"
    assert_equal j["extracted"], j["current"]
    assert_equal({ "tenant" => "acme co", "region" => "eu" }, j["inner"], "with_baggage adds, nil removes")
    assert_equal [{ "tenant" => "acme co", "region" => "eu" }, true], j["child"],
                 "spans inside with_baggage carry it and keep the current span as parent"
    assert_equal "tenant=acme%20co,region=eu", j["inject_inner"]["baggage"]
    assert_equal j["inject_inner"]["traceparent"], j["inject"]["traceparent"]
    assert_equal "tenant=acme%20co,user.id=7", j["inject"]["baggage"]
    assert_equal [false, { "k" => "v" }], j["only"]
    assert_equal [{ "k" => "v" }, true], j["fresh"], "baggage alone: a new trace that carries it"
    assert_equal [{}, {}], j["outside"]
    assert j["none"], "no well-formed member and no traceparent: nil"
    assert_equal({ "baggage" => "x=y" }, j["no_span"])
    assert_nil j["ran"]
    assert_match(/with_baggage: key "bad key" is not a W3C baggage key/, j["error"])
    view = receiver.for_service(svc) { |v| v["spans"].any? { |s| s["name"] == "fresh" } }
    consume = view["spans"].find { |s| s["name"] == "consume" }
    assert_equal [REMOTE_TRACE, REMOTE_SPAN, 5], consume.values_at("trace_id", "parent_span_id", "kind")
  end

  def test_baggage_propagator_off
    code = <<~RUBY
      require "json"
      require "polytel"
      ctx = Polytel.extract({ "traceparent" => "00-#{REMOTE_TRACE}-#{REMOTE_SPAN}-01", "baggage" => "a=1" })
      out = Polytel.span("s", parent: ctx) { Polytel.with_baggage(b: 2) { Polytel.inject } }
      puts JSON.dump({ "baggage" => ctx.baggage, "inject" => out.keys })
    RUBY
    j = run_ok(code: code, env: export_env(new_service("nobag"), enabled: nil, "OTEL_PROPAGATORS" => "tracecontext")).json
    assert_equal({ "baggage" => {}, "inject" => ["traceparent"] }, j)
  end
end
