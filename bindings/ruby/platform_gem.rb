# platform_gem.rb — the prebuilt x86_64-linux gem (extension compiled, libuv beside it) made from the source gem.
#
#   ruby platform_gem.rb SOURCE_GEM OUT_DIR
#
# The source gem is installed into a scratch GEM_HOME, so the extension is built exactly as `gem install`
# builds it for a user (bundled core, extconf.rb); its lib/ and the built polytel_ext.so are then packed into
# a gem for this platform and this Ruby's ABI (one minor version: an extension is built against it). libuv
# libisal and libzstd go into the gem beside the extension (RUNPATH $ORIGIN, set with patchelf), as
# auditwheel does for the wheels; libcurl and libc are the system's (docs/ruby.md).
require "fileutils"
require "rbconfig"
require "rubygems/package"
require "tmpdir"

src_gem, out_dir = ARGV
abort "usage: ruby platform_gem.rb SOURCE_GEM OUT_DIR" unless src_gem && out_dir && File.file?(src_gem)
src_gem = File.expand_path(src_gem)
out_dir = File.expand_path(out_dir)

# What the extension links that a machine with Ruby may lack: carried in the gem.
BUNDLED = %w[libuv.so.1 libisal.so.2 libzstd.so.1].freeze

def run!(env, *cmd)
  system(env, *cmd) or abort "platform_gem: failed: #{cmd.join(" ")}"
end

Dir.mktmpdir("polytel-platform-gem") do |tmp|
  home = File.join(tmp, "home")
  run!({ "POLYTEL_BUNDLED_CORE" => "1", "MAKEFLAGS" => ENV.fetch("MAKEFLAGS", "-j2") },
       "gem", "install", "--local", "--no-document", "--install-dir", home, src_gem, out: File::NULL)
  spec = Gem::Specification.load(Dir[File.join(home, "specifications", "polytel-*.gemspec")].first)
  ext = Dir[File.join(home, "extensions", "**", "polytel", "polytel_ext.so")].first or
    abort "platform_gem: the source gem built no polytel_ext.so"

  stage = File.join(tmp, "stage")
  FileUtils.mkdir_p(stage)
  Dir.chdir(spec.full_gem_path) do
    (Dir["lib/**/*.rb"] + Dir["sig/**/*.rbs"] + ["README.md"]).each do |f|
      FileUtils.mkdir_p(File.join(stage, File.dirname(f)))
      FileUtils.cp(f, File.join(stage, f))
    end
  end
  so = File.join(stage, "lib", "polytel", "polytel_ext.so")
  FileUtils.cp(ext, so)
  ldd = `ldd #{ext}`
  BUNDLED.each do |soname|
    path = ldd[%r{#{Regexp.escape(soname)} => (\S+)}, 1] or abort "platform_gem: #{ext} does not link #{soname}"
    FileUtils.cp(File.realpath(path), File.join(stage, "lib", "polytel", soname))
  end
  run!({}, "patchelf", "--set-rpath", "$ORIGIN", so)
  system("strip", "--strip-unneeded", so) # debug info is not what a prebuilt gem ships

  abi = RbConfig::CONFIG["ruby_version"].split(".")[0, 2].join(".")
  spec.platform = Gem::Platform.local
  spec.extensions = []
  spec.required_ruby_version = "~> #{abi}.0"
  spec.files = Dir.chdir(stage) { Dir["**/*"].select { |f| File.file?(f) }.sort }
  Dir.chdir(stage) do
    file = Gem::Package.build(spec)
    FileUtils.mkdir_p(out_dir)
    FileUtils.mv(file, File.join(out_dir, file))
    puts File.join(out_dir, file)
  end
end
