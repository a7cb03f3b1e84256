# Sourced by the load scripts, so that what they measure is the server they started: a server
# left running on the port would otherwise answer the health check and take the load.

# Stops the script when something already answers on port $1.
port_must_be_free() {
  if curl -sf "http://127.0.0.1:$1/healthz" >/dev/null; then
    echo "port $1 already answers (a server left running?); stop it or set PORT" >&2
    exit 1
  fi
}

# Waits until the server with pid $1 answers on port $2; stops the script if it exited.
wait_for_server() {
  until curl -sf "http://127.0.0.1:$2/healthz" >/dev/null; do
    kill -0 "$1" 2>/dev/null || { echo "the server did not start" >&2; exit 1; }
    sleep 0.2
  done
}
