"""`mailbag account login NAME`: sign in (again) with OAuth2; also the sign-in step of
`account add --auth oauth2`.

Registered under the `account` command by `cmd_account.py`. The browser flow
opens the system browser (or prints the URL when none can be opened); `--device`
prints a code to enter on another device. The refresh token goes to the
keyring; client IDs given here are saved in config.toml (for this account, or
with `--oauth-shared` for every account of the provider).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailbag.cli.context import Context

if TYPE_CHECKING:
    from mailbag.auth import DeviceCode
    from mailbag.auth.setup import ClientChoice
    from mailbag.config import Account


OAUTH_GROUP_HELP = (
    "for --auth oauth2 (Outlook.com and Microsoft 365 need it; Gmail wants it or an app "
    "password) and for servers that accept only OAuth2. mailbag has no client ID of its "
    "own: register one with the provider (free, a few minutes; the README section "
    "'Signing in with OAuth2' has the steps for Microsoft and Google) and give it with "
    "--oauth-client-id. Providers whose autoconfig publishes OAuth2 settings need only "
    "the client ID."
)

LOGIN_DESCRIPTION = """\
Sign in to the account's provider with OAuth2 and keep the new sign-in (a refresh
token) in the keyring. Use it when mailbag says "sign in again" (the sign-in was
revoked, expired, or the password changed), or to change the client ID.

A browser opens at the provider's sign-in page (or, with --no-browser or when none
can be opened, the address is printed); after you accept, the browser returns to
mailbag on this machine (http://localhost). Without a browser here, --device shows
a code to enter on any other device (not possible with Gmail).

examples:
  mailbag account login work
  mailbag account login work --device
  mailbag account login home --oauth-client-id ID --oauth-shared  # ID for all of that provider
  mailbag account login gmail --oauth-client-id ID --oauth-client-secret SECRET
"""


def add_oauth_arguments(parser: argparse.ArgumentParser) -> None:
    """The OAuth2 options `account add` and `account login` share."""
    g = parser.add_argument_group("OAuth2 sign-in", OAUTH_GROUP_HELP)
    g.add_argument(
        "--oauth-client-id",
        metavar="ID",
        help="the client ID of the application you registered with the provider "
        "(see the README: 'Signing in with OAuth2')",
    )
    g.add_argument(
        "--oauth-client-secret",
        metavar="SECRET",
        help="its client secret, if the provider issued one (Google does); kept in the keyring",
    )
    g.add_argument(
        "--oauth-provider",
        choices=["microsoft", "google", "generic"],
        help="whose sign-in to use (default: guessed from the address and server)",
    )
    g.add_argument(
        "--oauth-tenant",
        metavar="TENANT",
        help="Microsoft: common (default), consumers, organizations or your tenant ID",
    )
    g.add_argument(
        "--oauth-shared",
        action="store_true",
        help="save the client ID for every account of this provider ([oauth2.PROVIDER])",
    )
    g.add_argument(
        "--device",
        action="store_true",
        help="sign in on another device with a code (for machines without a browser)",
    )
    g.add_argument(
        "--no-browser",
        action="store_true",
        help="do not open a browser: print the sign-in URL to open yourself",
    )


def register(account_sub: Any, common: argparse.ArgumentParser) -> None:
    p = account_sub.add_parser(
        "login",
        parents=[common],
        help="OAuth2: sign in again (after a revoked or expired sign-in)",
        description=LOGIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="the account (see: mailbag account list)")
    add_oauth_arguments(p)
    p.set_defaults(run=run)


def _show_url(ctx: Context, no_browser: bool) -> Any:
    def show(url: str, opened: bool) -> None:
        if opened:
            ctx.info("a browser window opened for the sign-in; waiting for you to finish ...")
            if ctx.verbose:
                ctx.info(f"(if it did not, open: {url})")
        else:
            why = "" if no_browser else "could not open a browser; "
            # the URL is what the user needs: printed even with --quiet
            ctx.stderr.write(f"{why}open this address to sign in:\n\n  {url}\n\n")
            ctx.stderr.write("waiting for you to finish ...\n")
            ctx.stderr.flush()

    return show


def _show_code(ctx: Context) -> Any:
    def show(code: DeviceCode) -> None:
        ctx.stderr.write(
            f"on any device, open {code.verification_uri} and enter the code {code.user_code}\n"
            "waiting for you to finish ...\n"
        )
        ctx.stderr.flush()

    return show


def client_choice(args: argparse.Namespace) -> ClientChoice:
    from mailbag.auth.setup import ClientChoice

    return ClientChoice(
        provider=args.oauth_provider or "",
        tenant=args.oauth_tenant or "",
        client_id=args.oauth_client_id or "",
        client_secret=args.oauth_client_secret or "",
        shared=bool(args.oauth_shared),
    )


def oauth_sign_in(args: argparse.Namespace, ctx: Context, account: Account) -> Account:
    """Run the sign-in for `account` with the OAuth2 options in `args`; returns the
    account with its (possibly new) OAuth2 settings. The refresh token is stored."""
    import webbrowser

    from mailbag.auth.setup import keep_sign_in, with_client
    from mailbag.auth.tokens import obtain_tokens

    account, choice, notes = with_client(account, client_choice(args))
    for note in notes:
        ctx.warn(note)

    def open_browser(url: str) -> bool:
        return False if args.no_browser else webbrowser.open(url)

    token = obtain_tokens(
        account,
        device=args.device,
        paths=ctx.paths,
        show_url=_show_url(ctx, args.no_browser),
        show_code=_show_code(ctx),
        open_browser=open_browser,
        **choice.flow_args(),
    )
    keep_sign_in(ctx.paths, account, token, choice)
    return account


def run(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import AuthMethod, load_config, save_account
    from mailbag.errors import UsageError

    account = load_config(ctx.paths).account(args.name)
    if AuthMethod.OAUTH2 not in (account.incoming.auth, account.smtp.auth):
        raise UsageError(
            f"account {account.name!r} signs in with a password, not OAuth2",
            hint=f"change its password with: mailbag account set-password {account.name} "
            '(or set auth = "oauth2" for its servers in config.toml, then run this again)',
        )
    updated = oauth_sign_in(args, ctx, account)
    if updated.oauth2 != account.oauth2:
        save_account(ctx.paths, updated)
    if ctx.json:
        ctx.emit_json({"account": account.name, "signed_in": True})
    else:
        ctx.info(f"signed in: account {account.name!r} is ready")
    return 0
