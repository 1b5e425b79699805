"""Documentation fragment: connection options shared by the project's modules."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_user:
    description: The PostgreSQL role to connect as.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description: Password of I(login_user). Never logged. Falls back to C(PGPASSWORD).
    type: str
    default: ''
  login_host:
    description: Host to connect to. Empty means the Unix socket.
    type: str
    default: ''
  login_unix_socket:
    description: Directory of the Unix socket when I(login_host) is empty.
    type: str
    default: ''
  login_port:
    description: Port to connect to.
    type: int
    default: 5432
    aliases: [port]
  db:
    description: Database to connect to.
    type: str
    default: ''
    aliases: [login_db]
  ssl_mode:
    description: libpq SSL mode.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: CA certificate file used to verify the server when I(ssl_mode) asks for it.
    type: str
    aliases: [ssl_rootcert]
  connect_timeout:
    description: Seconds to wait for a connection before failing.
    type: int
    default: 10
requirements:
  - psycopg2 (psycopg2-binary) on the managed host
"""
