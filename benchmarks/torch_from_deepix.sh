# Sourced by the benchmark venv setups: link_torch VENV MAIN_VENV VERSION makes VENV see deepix's
# torch (a .pth line appending deepix's site-packages after VENV's own) when MAIN_VENV has that
# version, so every framework runs on the same build with no second download. Returns 1 otherwise.
link_torch() {
    local venv="$1" main="$2" version="$3" site main_site=""
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    if [ -x "$main/bin/python" ]; then
        main_site="$("$main/bin/python" -c "
import sysconfig, torch
print(sysconfig.get_paths()['purelib'] if torch.__version__.split('+')[0] == '$version' else '')
" 2>/dev/null || true)"
    fi
    if [ -n "$main_site" ]; then
        echo "$main_site" > "$site/_torch_from_deepix_venv.pth"
        return 0
    fi
    rm -f "$site/_torch_from_deepix_venv.pth"
    return 1
}
