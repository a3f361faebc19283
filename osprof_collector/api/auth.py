"""Who may read traces: anyone (noauth), or Keystone tokens checked by
keystonemiddleware's auth_token ([keystone_authtoken] options).

Trace payloads hold SQL statements and request parameters of every
project, and nothing in an osprofiler trace says which Keystone project
made the request: only tokens with one of [api] admin_roles read them;
any other valid token gets a 403.
"""

import webob
import webob.dec

from osprof_collector.api import responses


class ConfigurationError(Exception):
    """The configured auth_strategy cannot work."""


def protect(app, conf):
    """The application behind the configured auth_strategy."""
    if conf.api.auth_strategy == "noauth":
        return app
    # Only loaded when used: noauth deployments need no Keystone client.
    from keystonemiddleware import auth_token
    protected = auth_token.AuthProtocol(
        AdminsOnly(app, conf.api.admin_roles), {"oslo_config_config": conf})
    # Without it every refusal fails: a 401 names where to get a token.
    if not conf.keystone_authtoken.www_authenticate_uri:
        raise ConfigurationError("auth_strategy = keystone needs "
                                 "[keystone_authtoken] www_authenticate_uri")
    return protected


class AdminsOnly:
    """Lets through the requests whose token has one of the roles."""

    def __init__(self, app, roles):
        self.app = app
        self.roles = {role.lower() for role in roles}

    @webob.dec.wsgify
    def __call__(self, request):
        roles = {role.strip().lower() for role in
                 request.headers.get("X-Roles", "").split(",")}
        if request.headers.get("X-Identity-Status") != "Confirmed" or \
                not roles & self.roles:
            return responses.error(403, "reading traces needs a token with "
                                        "one of the roles: " +
                                   ", ".join(sorted(self.roles)))
        return request.get_response(self.app)
