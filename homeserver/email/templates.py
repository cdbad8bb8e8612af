"""The templates of validation mails and of the pages their links open.

Names are Synapse's (``registration.html``, ``password_reset_failure.html`` ...), so
an admin's ``email.template_dir`` written for Synapse overrides the built-in ones
here. Templates are Jinja2; HTML ones are autoescaped and sandboxed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

# jinja2 is imported when the first template is rendered, not by every server.
if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

BUILTIN_DIR = Path(__file__).parent / "templates"


class ValidationPurpose(Enum):
    """Why an address is being validated: names the templates and the mail subject."""

    REGISTRATION = "registration"
    PASSWORD_RESET = "password_reset"
    ADD_THREEPID = "add_threepid"

    @property
    def subject_key(self) -> str:
        """The key of ``email.subjects`` for this mail."""
        return "password_reset" if self is ValidationPurpose.PASSWORD_RESET else "email_validation"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class MailTemplates:
    def __init__(self, template_dir: Path | None) -> None:
        search = [str(template_dir)] if template_dir is not None else []
        search.append(str(BUILTIN_DIR))
        self._search = search
        self._env: SandboxedEnvironment | None = None

    def render(self, name: str, **values: Any) -> str:
        if self._env is None:
            self._env = _environment(self._search)
        return self._env.get_template(name).render(**values)

    def validation_mail(
        self, purpose: ValidationPurpose, subject_format: str, **values: Any
    ) -> RenderedMail:
        """The mail with the validation ``link`` (in ``values``) for ``purpose``."""
        subject = subject_format % {
            "server_name": values.get("server_name", ""),
            "app": values.get("app_name", ""),
        }
        return RenderedMail(
            subject=subject,
            text=self.render(f"{purpose.value}.txt", **values),
            html=self.render(f"{purpose.value}.html", **values),
        )

    def success_page(self, purpose: ValidationPurpose) -> str:
        return self.render(f"{purpose.value}_success.html")

    def failure_page(self, purpose: ValidationPurpose, reason: str) -> str:
        return self.render(f"{purpose.value}_failure.html", failure_reason=reason)


def _environment(search: list[str]) -> SandboxedEnvironment:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=jinja2.select_autoescape(["html"]),
    )
