# Sourced by the scripts: a Node.js that install-deps.sh fetched (when the machine's is older
# than the console needs) comes first on PATH, for node and for the npm scripts it runs.
if [ -x "$HOME/.cache/conclave/node/bin/node" ]; then
  export PATH="$HOME/.cache/conclave/node/bin:$PATH"
fi
