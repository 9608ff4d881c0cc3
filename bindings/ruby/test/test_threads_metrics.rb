# test_threads_metrics.rb — several Ruby threads at once: exact log, span and metric totals.
require_relative "test_helper"

class TestThreadsMetrics < Minitest::Test
  THREADS = 8
  PER = 500

  def last_point(points, name, attrs = nil)
    pts = points.select { |p| p["name"] == name && (attrs.nil? || p["attributes"] == attrs) }
    refute_empty pts, "no points for #{name} #{attrs.inspect}"
    pts.max_by { |p| p["time_ns"] }
  end

  def test_threads_exact_totals
    svc = new_service("threads")
    r = run_ok("threads.rb", env: export_env(svc), args: [THREADS.to_s, PER.to_s])
    total = THREADS * PER
    view = receiver.for_service(svc) do |v|
      v["logs"].size >= total && v["metrics"].any? { |p| p["name"] == "rb.depth" }
    end
    assert_no_receiver_errors(view)

    expected = (0...THREADS).flat_map { |t| (0...PER).map { |i| "t#{t} i#{i}" } }
    assert_equal expected.sort, bodies(view["logs"]).sort, "every log exactly once"
    assert_equal THREADS * PER / 10, view["spans"].count { |s| s["name"] == "work" }

    jobs = last_point(view["metrics"], "rb.jobs", { "queue" => "main" })
    assert_equal ["sum", true, total, "1"], [jobs["type"], jobs["is_monotonic"], jobs["value"], jobs["unit"]]
    assert_kind_of Integer, jobs["value"]
    assert_equal 2 * THREADS * PER / 10, last_point(view["metrics"], "rb.jobs", { "queue" => "side" })["value"]

    lat = last_point(view["metrics"], "rb.latency")
    assert_equal "histogram", lat["type"]
    assert_equal "ms", lat["unit"]
    assert_equal total, lat["count"]
    assert_in_delta THREADS * (PER / 10) * 45.0, lat["sum"], 1e-6
    assert_equal total, lat["bucket_counts"].sum

    depth = last_point(view["metrics"], "rb.depth")
    assert_equal ["gauge", 7.25, "{item}", { "queue" => "main" }],
                 [depth["type"], depth["value"], depth["unit"], depth["attributes"]]

    stats = r.json["stats"]
    assert_equal stats["recorded"], stats["exported"] + stats["dropped"] + stats["unconfirmed"] + stats["pending"]
    assert_equal 0, stats["dropped"]
  end
end
