"""Mail this server sends: SMTP delivery (``mailer``) and the templates of the
validation mails and pages (``templates``), overridable from ``email.template_dir``."""

from homeserver.email.mailer import MailDeliveryError, SmtpMailer
from homeserver.email.templates import MailTemplates, ValidationPurpose

__all__ = ["MailDeliveryError", "MailTemplates", "SmtpMailer", "ValidationPurpose"]
