# polytel.gemspec — the polytel gem: the Ruby layer, the C extension and (vendored when built) the core sources.
require_relative "vendor_core"

# Building from a checkout: copy ../../core into ext/polytel/core first (git-ignored), so the gem
# builds anywhere with only libuv, libcurl, libisal and libzstd installed.
PolytelVendor.vendor!

Gem::Specification.new do |s|
  s.name = "polytel"
  s.version = PolytelVendor.version
  s.summary = "Two-phase telemetry (logs, spans, metrics, OTLP export) with a C core"
  s.description = <<~DESC
    Bindings to the polytel C core. `require "polytel"` gives console logging at once (phase 1);
    Polytel.bootstrap_worker starts batched OTLP/HTTP export on a polytel-owned libuv loop thread
    (phase 2). With TELEMETRY_ENABLED=true, everything recorded before bootstrap is kept and exported.
    Includes a ::Logger bridge, block spans, counters, gauges, histograms, fork and at_exit handling.
  DESC
  s.authors = ["polytel contributors"]
  s.license = "MIT"
  s.homepage = "https://example.invalid/polytel"
  s.required_ruby_version = ">= 3.0"
  s.metadata = { "rubygems_mfa_required" => "true" }

  s.files = Dir.chdir(__dir__) do
    Dir["lib/**/*.rb", "ext/polytel/*.{c,h,rb}", "ext/polytel/core/**/*", "sig/**/*.rbs", "README.md",
        "polytel.gemspec", "vendor_core.rb"]
      .select { |f| File.file?(f) }
  end
  s.extensions = ["ext/polytel/extconf.rb"]
  s.require_paths = ["lib"]
end
