#!/bin/sh
# Makes a test certificate authority and certificates for trying TLS on one
# machine, with the openssl command only (OpenSSL 3). For local use and for
# the tests: never for a real deployment (the keys are written unencrypted
# and the CA's key sits beside its certificate).
#
#   scripts/make-certs.sh DIR
#
# Writes into DIR (made if missing; files already there are replaced):
#   ca.pem ca.key                  the test CA (ECDSA P-256, 10 years)
#   server.pem server.key          server certificate for localhost:
#                                  SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   server2.pem server2.key        a second one for the same names (another
#                                  key and serial, subject O=tern-test-2):
#                                  what a reload swaps in
#   client.pem client.key          client certificate, subject
#                                  CN=orders-service,O=tern-test, SAN
#                                  DNS:orders-service and
#                                  URI:spiffe://tern.test/orders-service
#   client-expired.pem .key        client certificate from the same CA whose
#                                  validity ended in 2020 (CN=expired-client)
#   wrongca.pem wrongca.key        a second, unrelated CA
#   client-wrongca.pem .key        client certificate signed by that CA
#                                  (CN=orders-service, same names as client)
#   server-wrongname.pem .key      server certificate from the good CA for
#                                  the wrong name (SAN DNS:wrong.example only)
#   node.pem node.key              a cluster node's route certificate (both
#                                  serverAuth and clientAuth, SAN as server)
#   node-wrongca.pem .key          the same from the unrelated CA
#
# Try it:
#   scripts/make-certs.sh /tmp/tern-certs
#   ternd --tls-cert /tmp/tern-certs/server.pem --tls-key /tmp/tern-certs/server.key
#   tern sub --tls-ca /tmp/tern-certs/ca.pem -s tls://localhost:7421 'demo.>'
# and for mutual TLS add --tls-ca ca.pem --tls-verify to ternd and
# --tls-cert client.pem --tls-key client.key to the client.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077
work=$(mktemp -d make-certs.XXXXXX)
trap 'rm -rf "$work"' EXIT

key() { # key NAME: an ECDSA P-256 key in NAME.key
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$1.key" 2>/dev/null
}

ca() { # ca NAME SUBJECT: a self-signed CA in NAME.pem
  key "$1"
  openssl req -new -x509 -key "$1.key" -out "$1.pem" -days 3650 \
    -subj "$2" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"
}

leaf() { # leaf NAME CA SUBJECT USAGE SAN: NAME.pem signed by CA.pem
  key "$1"
  openssl req -new -key "$1.key" -out "$work/$1.csr" -subj "$3"
  cat >"$work/$1.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=$4
subjectAltName=$5
authorityKeyIdentifier=keyid
EOF
  openssl x509 -req -in "$work/$1.csr" -CA "$2.pem" -CAkey "$2.key" \
    -set_serial "0x$(openssl rand -hex 12)" -days 825 -sha256 \
    -extfile "$work/$1.ext" -out "$1.pem" 2>/dev/null
}

server_san="DNS:localhost,IP:127.0.0.1,IP:::1"
client_san="DNS:orders-service,URI:spiffe://tern.test/orders-service"

ca ca "/O=tern-test/CN=tern test CA"
ca wrongca "/O=tern-wrong/CN=tern wrong CA"
leaf server ca "/O=tern-test/CN=localhost" serverAuth "$server_san"
leaf server2 ca "/O=tern-test-2/CN=localhost" serverAuth "$server_san"
leaf server-wrongname ca "/O=tern-test/CN=wrong.example" serverAuth \
  "DNS:wrong.example"
leaf client ca "/O=tern-test/CN=orders-service" clientAuth "$client_san"
leaf client-wrongca wrongca "/O=tern-test/CN=orders-service" clientAuth \
  "$client_san"
leaf node ca "/O=tern-test/CN=tern-node" serverAuth,clientAuth "$server_san"
leaf node-wrongca wrongca "/O=tern-wrong/CN=tern-node" serverAuth,clientAuth \
  "$server_san"

# An expired certificate: openssl x509 (3.0) cannot date one in the past,
# openssl ca can, given a scratch database.
key client-expired
openssl req -new -key client-expired.key -out "$work/expired.csr" \
  -subj "/O=tern-test/CN=expired-client"
: >"$work/index.txt"
cat >"$work/ca.cnf" <<EOF
[ca]
default_ca = test
[test]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
unique_subject = no
preserve = yes
copy_extensions = none
x509_extensions = client
[any]
commonName = supplied
organizationName = optional
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:expired-client
EOF
openssl rand -hex 8 >"$work/serial"
openssl ca -batch -config "$work/ca.cnf" -cert ca.pem -keyfile ca.key \
  -startdate 20200101000000Z -enddate 20200102000000Z \
  -in "$work/expired.csr" -out client-expired.pem -notext 2>/dev/null

# Readable by the user's other tools (the keys stay private to the user).
chmod 644 ./*.pem
echo "make-certs: wrote CA, server, client and broken certificates in $(pwd)"
