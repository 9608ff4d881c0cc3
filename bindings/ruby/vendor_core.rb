# vendor_core.rb — copies the repository's core (sources.txt, src/, include/) into ext/polytel/core before a gem is built.
require "fileutils"

module PolytelVendor
  RUBY_DIR = __dir__
  REPO = File.expand_path("../..", RUBY_DIR)
  DEST = File.join(RUBY_DIR, "ext", "polytel", "core")

  module_function

  def in_repo?
    File.file?(File.join(REPO, "core", "sources.txt"))
  end

  # A fresh copy each time, so a gem never carries stale core files. Only what the extension compiles:
  # the list (sources.txt), the sources and headers; the version comes with include/polytel/version.h.
  def vendor!
    return false unless in_repo?
    FileUtils.rm_rf(DEST)
    FileUtils.mkdir_p(DEST)
    FileUtils.cp(File.join(REPO, "core", "sources.txt"), DEST)
    %w[include src].each do |sub|
      Dir.glob("**/*", base: File.join(REPO, "core", sub)).sort.each do |rel|
        from = File.join(REPO, "core", sub, rel)
        next unless File.file?(from) && rel.match?(/\.[ch]\z/)
        to = File.join(DEST, sub, rel)
        FileUtils.mkdir_p(File.dirname(to))
        FileUtils.cp(from, to)
      end
    end
    true
  end

  # POLYTEL_VERSION_STRING of polytel/version.h (rendered by CMake from project(VERSION), checked in).
  def version
    core = in_repo? ? File.join(REPO, "core") : DEST
    h = File.join(core, "include", "polytel", "version.h")
    File.file?(h) && File.read(h)[/#define POLYTEL_VERSION_STRING "([^"]+)"/, 1] or
      raise "polytel: no version: #{h} is missing (neither a polytel checkout nor vendored core sources)"
  end
end
