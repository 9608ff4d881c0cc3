# vendor_core.rb — copies the repository's core sources and version into ext/polytel/core before a gem is built.
require "fileutils"

module PolytelVendor
  RUBY_DIR = __dir__
  REPO = File.expand_path("../..", RUBY_DIR)
  DEST = File.join(RUBY_DIR, "ext", "polytel", "core")

  module_function

  def in_repo?
    File.file?(File.join(REPO, "core", "include", "polytel.h")) && File.file?(File.join(REPO, "CMakeLists.txt"))
  end

  # project(polytel VERSION x.y.z) in the root CMakeLists.txt: the one place the version lives.
  def repo_version
    File.read(File.join(REPO, "CMakeLists.txt"))[/project\(\s*polytel\s+VERSION\s+(\d+\.\d+\.\d+)/, 1] or
      raise "polytel: no project(polytel VERSION x.y.z) in #{REPO}/CMakeLists.txt"
  end

  # A fresh copy each time, so a gem never carries stale core files. Only what the extension compiles.
  def vendor!
    return false unless in_repo?
    FileUtils.rm_rf(DEST)
    FileUtils.mkdir_p(DEST)
    FileUtils.cp(File.join(REPO, "core", "CMakeLists.txt"), DEST)
    %w[include src].each do |sub|
      Dir.glob("**/*", base: File.join(REPO, "core", sub)).sort.each do |rel|
        from = File.join(REPO, "core", sub, rel)
        next unless File.file?(from) && rel.match?(/\.(c|h|h\.in)\z/)
        to = File.join(DEST, sub, rel)
        FileUtils.mkdir_p(File.dirname(to))
        FileUtils.cp(from, to)
      end
    end
    File.write(File.join(DEST, "VERSION"), repo_version + "\n")
    true
  end

  def version
    vendored = File.join(DEST, "VERSION")
    return repo_version if in_repo?
    return File.read(vendored).strip if File.file?(vendored)
    raise "polytel: no version: neither a polytel checkout nor vendored core sources"
  end
end
