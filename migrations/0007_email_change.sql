-- A new address rides on its confirmation token: it replaces the account's
-- address only when the mail sent to it is answered.
ALTER TABLE email_tokens ADD COLUMN new_email TEXT;
