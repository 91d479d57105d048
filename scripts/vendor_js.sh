#!/usr/bin/env bash
# Re-create book/vendor/: the pinned JavaScript the book and the slide decks
# load from local files, so that both open offline. Builds never run this script:
# the files it writes are committed. Run it only to change a version (needs npm and
# the npm registry). Every package is MIT, Apache-2.0 or BSD licensed; each folder keeps
# its LICENSE file.
set -euo pipefail
REVEAL=5.2.1          # reveal.js: the slide decks
MATHJAX=3.2.2         # MathJax 3: math in the book and in the decks
REQUIREJS=2.3.7       # RequireJS: loads reveal.js (nbconvert's deck template) and the widget manager
HTML_MANAGER=1.0.6    # @jupyter-widgets/html-manager: renders saved ipywidgets state (book and decks)

cd "$(dirname "$0")/.."
dest=book/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "reveal.js@$REVEAL" "mathjax@$MATHJAX" \
    "requirejs@$REQUIREJS" "@jupyter-widgets/html-manager@$HTML_MANAGER" >/dev/null)
for f in "$tmp"/*.tgz; do
    d="$tmp/$(basename "$f" .tgz)"; mkdir -p "$d"; tar xzf "$f" -C "$d"
done
rm -rf "$dest"
mkdir -p "$dest"/reveal.js/dist/theme/fonts/source-sans-pro "$dest"/reveal.js/plugin/notes \
         "$dest"/mathjax/es5/output/chtml/fonts "$dest"/requirejs "$dest"/@jupyter-widgets/html-manager/dist

r="$tmp/reveal.js-$REVEAL/package"
cp "$r"/LICENSE "$dest"/reveal.js/
cp "$r"/dist/reveal.js "$r"/dist/reveal.css "$dest"/reveal.js/dist/
cp "$r"/dist/theme/white.css "$dest"/reveal.js/dist/theme/
cp "$r"/dist/theme/fonts/source-sans-pro/{LICENSE,source-sans-pro.css,*.woff} \
   "$dest"/reveal.js/dist/theme/fonts/source-sans-pro/
cp "$r"/plugin/notes/notes.js "$dest"/reveal.js/plugin/notes/

m="$tmp/mathjax-$MATHJAX/package"
cp "$m"/LICENSE "$dest"/mathjax/
cp "$m"/es5/tex-chtml-full.js "$dest"/mathjax/es5/
cp -r "$m"/es5/output/chtml/fonts/woff-v2 "$dest"/mathjax/es5/output/chtml/fonts/

q="$tmp/requirejs-$REQUIREJS/package"
cp "$q"/require.js "$dest"/requirejs/
# RequireJS ships its MIT licence inside the file header; keep a pointer beside it.
printf 'RequireJS %s, MIT licence (see the header of require.js).\n' "$REQUIREJS" > "$dest"/requirejs/LICENSE

h="$tmp/jupyter-widgets-html-manager-$HTML_MANAGER/package"
# Kept under its module name: the pages point RequireJS's baseUrl at vendor/, so the
# manager's icon fonts resolve to vendor/@jupyter-widgets/html-manager/dist/.
w="$dest"/@jupyter-widgets/html-manager
cp "$h"/LICENSE "$w"/
cp "$h"/dist/embed-amd.js "$h"/dist/*.woff2 "$h"/dist/embed.js.LICENSE.txt "$w"/dist/

cat > "$dest"/VERSIONS <<EOV
reveal.js $REVEAL
mathjax $MATHJAX
requirejs $REQUIREJS
@jupyter-widgets/html-manager $HTML_MANAGER
EOV
du -sh "$dest"
