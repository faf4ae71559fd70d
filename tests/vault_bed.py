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


class VaultBed:
    def __init__(self, address, root_token):
        self.address = address
        self.root = hvac.Client(url=address, token=root_token)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        if 'jwt/' not in self.root.sys.list_auth_methods():
            self.root.sys.enable_auth_method('jwt', path='jwt')
        self.root.auth.jwt.configure(jwt_validation_pubkeys=[public_pem], bound_issuer=ISSUER,
                                     path='jwt')
        self.root.sys.create_or_update_policy('croupier-alice', (
            'path "secret/data/croupier/alice/*" '
            '{ capabilities = ["create", "read", "update"] }'))
        self.root.auth.jwt.create_role(USER, role_type='jwt', user_claim='sub',
                                       bound_audiences=[AUDIENCE],
                                       token_policies=['croupier-alice'], token_ttl='10m',
                                       allowed_redirect_uris=[], path='jwt')

    def token(self, sub=USER, aud=AUDIENCE, lifetime=600, issued_ago=0):
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
