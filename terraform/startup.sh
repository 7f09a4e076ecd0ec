#!/usr/bin/env bash
# hashtag pulse on a Compute Engine VM: installs the project, writes configuration.conf, creates
# the Prefect blocks and runs the Prefect server and a worker as systemd services.
#
# A Terraform template (templatefile in compute.tf): its placeholders are the quoted values just
# below and the JSON in write_configuration; everywhere else bash variables are written without
# braces, which Terraform leaves alone. GCE runs it as root at every boot, so every step is
# idempotent and a reboot comes back to running services.
# Its log: sudo journalctl -u google-startup-scripts.
set -euo pipefail

PROJECT_ID='${project_id}'
REPO_URL='${repo_url}'
REPO_REF='${repo_ref}'
AUTH_SECRET='${auth_secret}'
GPU='${gpu}'
# NAME=secret-id pairs, space-separated: the sources' secrets in Secret Manager
SOURCE_SECRETS='${source_secrets}'

APP_USER=pulse
APP_HOME=/opt/hashtag-pulse
APP_DIR=$APP_HOME/app
VENV=$APP_HOME/venv
ETC=/etc/hashtag-pulse
# prefect.yaml's hash when it was last deployed, in the Prefect home (~/.prefect) beside the database
DEPLOYED=$APP_HOME/.prefect/deployed-prefect-yaml
PREFECT_PORT=4200
# the work pool that prefect.yaml's deployments use
WORK_POOL=pulse
export PREFECT_API_URL=http://127.0.0.1:$PREFECT_PORT/api

as_app() {
  # runuser keeps the environment (PREFECT_API_URL, PREFECT_API_AUTH_STRING) and sets HOME, where
  # Prefect keeps its profile and database (PREFECT_HOME defaults to ~/.prefect).
  (cd "$APP_DIR" && runuser -u "$APP_USER" -- "$@")
}

install_packages() {
  # python3 -m venv runs without python3-venv too (Debian keeps ensurepip there): ask dpkg
  if ! command -v git >/dev/null || ! dpkg -s python3-venv >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q git python3-venv
  fi
}

# Google's driver installer reboots the VM part-way; this script runs again after each reboot and
# carries on until nvidia-smi answers.
install_gpu_driver() {
  if [ "$GPU" = 1 ] && ! nvidia-smi >/dev/null 2>&1; then
    mkdir -p /opt/google/cuda-installer
    curl -fsSL -o /opt/google/cuda-installer/cuda_installer.pyz \
      https://storage.googleapis.com/compute-gpu-installation-us/installer/latest/cuda_installer.pyz
    python3 /opt/google/cuda-installer/cuda_installer.pyz install_driver
  fi
}

install_project() {
  id -u "$APP_USER" >/dev/null 2>&1 ||
    useradd --system --create-home --home-dir "$APP_HOME" --shell /usr/sbin/nologin "$APP_USER"
  if [ ! -d "$APP_DIR/.git" ]; then
    runuser -u "$APP_USER" -- git clone --quiet "$REPO_URL" "$APP_DIR"
    as_app git checkout --quiet "$REPO_REF"
  fi
  # Reinstall only when the requirements change (pyproject.toml lists the dependencies that
  # requirements.txt installs with the project).
  local stamp
  stamp=$(cat "$APP_DIR"/requirements*.txt "$APP_DIR"/pyproject.toml | sha256sum | cut -d' ' -f1)-$GPU
  if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$stamp" ]; then
    # --clear: pip keeps an installed torch 2.13.0+cpu for the pin torch==2.13.0, so a VM that
    # gained a GPU would keep the CPU build
    as_app python3 -m venv --clear "$VENV"
    as_app "$VENV/bin/pip" install --quiet --upgrade pip
    if [ "$GPU" = 0 ]; then
      # The CPU build of the torch that requirements.txt pins: PyPI's Linux wheel brings ~3 GB of
      # CUDA libraries that a CPU-only VM never uses.
      as_app "$VENV/bin/pip" install --quiet "$(grep -E '^torch==' "$APP_DIR/requirements.txt")" \
        --index-url https://download.pytorch.org/whl/cpu
    fi
    as_app "$VENV/bin/pip" install --quiet -r requirements.txt
    echo "$stamp" >"$VENV/.installed"
  fi
}

write_configuration() {
  # Terraform's values, in the shape of `terraform output -json`: the same file a laptop writes.
  cat >"$ETC/terraform-outputs.json" <<'JSON'
${terraform_outputs}
JSON
  as_app "$VENV/bin/python" terraform/write_config.py \
    --outputs "$ETC/terraform-outputs.json" --output configuration.conf
}

read_auth() {
  gcloud secrets versions access latest --secret "$AUTH_SECRET" --project "$PROJECT_ID"
}

# The server's basic-auth string lives in Secret Manager. The first boot finds no version,
# generates a password and adds it; later boots (and a rotation: add a version, reboot) read the
# latest version. Any other error stops here rather than replace a password. Only root reads the
# env file that systemd passes to the services.
write_prefect_auth() {
  local auth
  if ! auth=$(read_auth 2>"$ETC/auth.err"); then
    if ! grep -q NOT_FOUND "$ETC/auth.err"; then
      cat "$ETC/auth.err" >&2
      return 1
    fi
    printf 'admin:%s' "$(openssl rand -hex 24)" |
      gcloud secrets versions add "$AUTH_SECRET" --project "$PROJECT_ID" --data-file=- --quiet
    auth=$(read_auth)
  fi
  (
    umask 077
    printf 'PREFECT_SERVER_API_AUTH_STRING=%s\nPREFECT_API_AUTH_STRING=%s\n' "$auth" "$auth" \
      >"$ETC/prefect.env"
  )
  export PREFECT_API_AUTH_STRING=$auth
}

# The sources' secrets, read from Secret Manager at every boot (a new version takes effect at the
# next one) into the environment file that systemd passes to the worker; root only.
write_source_secrets() {
  local pair name id value
  (
    umask 077
    : >"$ETC/sources.env.new"
    for pair in $SOURCE_SECRETS; do
      IFS='=' read -r name id <<<"$pair"
      value=$(gcloud secrets versions access latest --secret "$id" --project "$PROJECT_ID")
      if [[ $value == *$'\n'* ]]; then
        echo "secret $id holds several lines: store the value of $name alone" >&2
        exit 1
      fi
      printf '%s=%s\n' "$name" "$value" >>"$ETC/sources.env.new"
    done
    mv "$ETC/sources.env.new" "$ETC/sources.env"
  )
}

write_units() {
  cat >/etc/systemd/system/prefect-server.service <<UNIT
[Unit]
Description=Prefect server for hashtag pulse (127.0.0.1:$PREFECT_PORT only)
Wants=network-online.target
After=network-online.target

[Service]
User=$APP_USER
WorkingDirectory=$APP_DIR
EnvironmentFile=$ETC/prefect.env
Environment=PREFECT_SERVER_ANALYTICS_ENABLED=false
ExecStart=$VENV/bin/prefect server start --host 127.0.0.1 --port $PREFECT_PORT
Restart=on-failure
RestartSec=5
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=strict
ProtectHome=true
ReadWritePaths=$APP_HOME

[Install]
WantedBy=multi-user.target
UNIT
  cat >/etc/systemd/system/prefect-worker.service <<UNIT
[Unit]
Description=Prefect worker for hashtag pulse (work pool $WORK_POOL)
Requires=prefect-server.service
After=prefect-server.service

[Service]
User=$APP_USER
WorkingDirectory=$APP_DIR
EnvironmentFile=$ETC/prefect.env
EnvironmentFile=$ETC/sources.env
Environment=PREFECT_API_URL=$PREFECT_API_URL
ExecStart=$VENV/bin/prefect worker start --pool $WORK_POOL --type process
Restart=always
RestartSec=10
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=strict
ProtectHome=true
ReadWritePaths=$APP_HOME

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable prefect-server.service prefect-worker.service
  systemctl restart prefect-server.service prefect-worker.service
}

wait_for_server() {
  local i
  for i in $(seq 1 60); do
    if curl -fsS -o /dev/null -u "$PREFECT_API_AUTH_STRING" "$PREFECT_API_URL/health"; then
      return 0
    fi
    echo "waiting for the Prefect server ($i/60)"
    sleep 5
  done
  echo "the Prefect server did not answer: sudo journalctl -u prefect-server" >&2
  return 1
}

deploy() {
  # blocks/make_gcp_blocks.py creates the GcpCredentials and GcsBucket blocks that
  # [prefect_config] names, with the VM's own credentials (no key file).
  as_app "$VENV/bin/python" blocks/make_gcp_blocks.py
  # --overwrite: the worker may have created the pool a moment earlier
  as_app "$VENV/bin/prefect" work-pool create "$WORK_POOL" --type process --overwrite
  # prefect deploy replaces the deployments' schedules, which would undo a pause made in the UI at
  # every boot: deploy when prefect.yaml changed, or when the Prefect database (beside the stamp,
  # in PREFECT_HOME) is new
  local stamp
  stamp=$(sha256sum "$APP_DIR/prefect.yaml" | cut -d' ' -f1)
  if [ "$(cat "$DEPLOYED" 2>/dev/null)" != "$stamp" ]; then
    as_app "$VENV/bin/prefect" --no-prompt deploy --all
    echo "$stamp" >"$DEPLOYED"
  fi
}

main() {
  install_packages
  install_gpu_driver
  mkdir -p "$ETC"
  chmod 755 "$ETC"
  install_project
  write_configuration
  write_prefect_auth
  write_source_secrets
  write_units
  wait_for_server
  deploy
  echo "hashtag pulse is running: Prefect server on 127.0.0.1:$PREFECT_PORT, worker on pool $WORK_POOL"
}

main "$@"
