#!/usr/bin/env bash
# tests/tls/make-test-pki.sh DIR - a throw-away CA and a certificate for localhost and
# 127.0.0.1 signed by it, made with openssl: DIR/ca.pem, DIR/cert.pem, DIR/key.pem.
# Used by tests/tls/run.sh and tests/h2/run.sh. Exit status non-zero (openssl's output in
# DIR/openssl.log) if openssl cannot make them.
set -uo pipefail
DIR="$1"
{
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=switchboard test CA" -keyout "$DIR/ca.key" -out "$DIR/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$DIR/key.pem" -out "$DIR/server.csr" &&
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$DIR/server.ext" &&
  openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
    -days 2 -extfile "$DIR/server.ext" -out "$DIR/cert.pem"
} >"$DIR/openssl.log" 2>&1
