"""The bed's OpenBao dev server, set up for Croupier's Vault convention.

JWT auth at `jwt` trusts an RSA key generated here; role `alice` (audience
`croupier`) may read and write `secret/croupier/alice/*`.
"""

import time

import hvac
import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = 'croupier-test-issuer'
AUDIENCE = 'croupier'
USER = 'alice'


# where the bed's JWT signing key is kept, outside the croupier/ secrets the tests use
SIGNING_KEY_PATH = 'croupier-bed/jwt-signing-key'


def _shared_signing_key(root: hvac.Client) -> bytes:
    """The PEM of the RSA key the bed's JWTs are signed with, the same for every test
    process using this OpenBao (several developers share the bed at once): the first
    one stores it with check-and-set, the others read it."""
    def read():
        return root.secrets.kv.v2.read_secret_version(
            path=SIGNING_KEY_PATH, mount_point='secret',
            raise_on_deleted_version=True)['data']['data']['pem'].encode()
    try:
        return read()
    except hvac.exceptions.InvalidPath:
        pass
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        root.secrets.kv.v2.create_or_update_secret(path=SIGNING_KEY_PATH,
                                                   secret={'pem': pem.decode()}, cas=0,
                                                   mount_point='secret')
    except hvac.exceptions.InvalidRequest:      # another process stored its key first
        return read()
    return pem


class VaultBed:
    def __init__(self, address, root_token):
        self.address = address
        self.root = hvac.Client(url=address, token=root_token)
        self.private_pem = _shared_signing_key(self.root)
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        if 'jwt/' not in self.root.sys.list_auth_methods():
            self.root.sys.enable_auth_method('jwt', path='jwt')
        self._trust_signing_key()
        self.root.sys.create_or_update_policy('croupier-alice', (
            'path "secret/data/croupier/alice/*" '
            '{ capabilities = ["create", "read", "update"] }'))
        self.root.auth.jwt.create_role(USER, role_type='jwt', user_claim='sub',
                                       bound_audiences=[AUDIENCE],
                                       token_policies=['croupier-alice'], token_ttl='10m',
                                       allowed_redirect_uris=[], path='jwt')

    def _trust_signing_key(self) -> None:
        """Make the JWT auth method trust the shared signing key, keeping the keys it
        already trusts (other test runs' tokens must keep working while they run)."""
        try:
            trusted = self.root.auth.jwt.read_config(path='jwt')['data'].get(
                'jwt_validation_pubkeys') or []
        except hvac.exceptions.VaultError:      # not configured yet
            trusted = []
        if self.public_pem.strip() not in [k.strip() for k in trusted]:
            self.root.auth.jwt.configure(jwt_validation_pubkeys=[*trusted, self.public_pem],
                                         bound_issuer=ISSUER, path='jwt')

    def token(self, sub=USER, aud=AUDIENCE, lifetime=600, issued_ago=0):
        # a test run from before the shared key may have replaced the trusted keys
        self._trust_signing_key()
        now = int(time.time()) - issued_ago
        return pyjwt.encode({'sub': sub, 'aud': aud, 'iss': ISSUER, 'iat': now, 'nbf': now,
                             'exp': now + lifetime}, self.private_pem, algorithm='RS256')

    def put(self, host, data, user=USER):
        self.root.secrets.kv.v2.create_or_update_secret(path=f'croupier/{user}/{host}',
                                                        secret=data, mount_point='secret')

    def get(self, host, user=USER):
        return self.root.secrets.kv.v2.read_secret_version(
            path=f'croupier/{user}/{host}', mount_point='secret',
            raise_on_deleted_version=True)['data']['data']
