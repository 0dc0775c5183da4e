"""UserService: registration, login and lookups over any repository."""

from __future__ import annotations

import logging

from backend_kit.errors import UserNotFoundError, UserValidationError
from backend_kit.users._model import (
    DEFAULT_PAGE_SIZE,
    MAX_PASSWORD_LENGTH,
    NewUser,
    User,
    UserPage,
    as_text,
    validate_email,
    validate_password,
)
from backend_kit.users._protocols import EventPublisher, PasswordService, UserRepository

__all__ = ["USER_CREATED", "UserService"]

logger = logging.getLogger("backend_kit.users")

#: The event type published after a user is stored.
USER_CREATED = "user.created"


class UserService:
    """Create, authenticate and look up users.

    Args:
        repository: Where users live (:class:`InMemoryUserRepository`,
            ``SqlUserRepository``, ``MongoUserRepository`` or your own).
        security: Hashes and verifies passwords off the event loop; a
            :class:`backend_kit.security.SecurityManager` fits.
        events: When given, ``user.created`` is published on it after each
            user is stored; an :class:`backend_kit.events.EventBus` fits.
    """

    def __init__(
        self,
        repository: UserRepository,
        security: PasswordService,
        events: EventPublisher | None = None,
    ) -> None:
        self.repository = repository
        self.security = security
        self.events = events

    async def create_user(self, new_user: NewUser) -> User:
        """Hash the password, store the user and (with a bus) publish ``user.created``.

        The event's data is :meth:`User.to_dict` (id, email, name, created_at);
        it is published only after the user is stored, so a consumer can
        always find the user.

        Raises:
            DuplicateEmailError: the email is taken (decided by the store's
                unique constraint, so also under concurrency).
            UserValidationError: the hasher refused the password (field
                ``password``: a lone surrogate, or over its UTF-8 byte limit).
            Exception: whatever the bus raises when publishing fails (for
                example ``PublishError``). The user *is* stored then; the
                error carries a note saying so, with the user id, so the
                event can be republished.
        """
        try:
            password_hash = await self.security.ahash_password(new_user.password)
        except ValueError as exc:
            # NewUser counts characters; the hasher also refuses a lone
            # surrogate or more than its max_password_bytes of UTF-8. Its
            # messages state the rule, never the password.
            rule = str(exc).removeprefix("password ")
            raise UserValidationError(f"password: {rule}", field="password") from None
        user = await self.repository.add(
            email=new_user.email, name=new_user.name, password_hash=password_hash
        )
        logger.debug("user %s created", user.id)
        if self.events is not None:
            try:
                await self.events.publish_event(USER_CREATED, user.to_dict())
            except Exception as exc:
                # Not swallowed: the caller must learn the event is missing. The
                # note keeps the cause and says the user itself was stored.
                exc.add_note(
                    f"user {user.id} was stored; its {USER_CREATED} event was not published"
                )
                raise
        return user

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user whose email and password match, else ``None``.

        - An unknown email (or one that cannot be an email, or a password
          longer than any user could have set) still spends one dummy verify,
          so the response time does not tell which emails are registered.
        - When the stored hash is deprecated (a legacy bcrypt hash, or
          Argon2id with older parameters), the upgraded hash returned by
          ``averify_and_update`` is saved before returning.
        """
        try:
            normalized = validate_email(email)
        except UserValidationError:
            await self.security.adummy_verify()
            return None
        text = as_text(password)
        if text is None or len(text) > MAX_PASSWORD_LENGTH:
            await self.security.adummy_verify()
            return None
        credentials = await self.repository.get_credentials(normalized)
        if credentials is None:
            await self.security.adummy_verify()
            return None
        matches, new_hash = await self.security.averify_and_update(text, credentials.password_hash)
        if not matches:
            return None
        user = credentials.user
        if new_hash is not None:
            try:
                await self.repository.set_password_hash(user.id, new_hash)
            except UserNotFoundError:
                # Deleted between the lookup and now: it no longer exists to log in.
                return None
            logger.info("password hash of user %s upgraded on login", user.id)
        return user

    async def get_user(self, user_id: str) -> User:
        """The user with that id.

        Raises:
            UserNotFoundError: no user has that id.
        """
        user = await self.repository.get(user_id)
        if user is None:
            raise UserNotFoundError("no user has this id")
        return user

    async def get_user_by_email(self, email: str) -> User:
        """The user with that email (case-insensitive).

        Raises:
            UserNotFoundError: no user has that email.
        """
        user = await self.repository.get_by_email(email)
        if user is None:
            raise UserNotFoundError("no user has this email")
        return user

    async def list_users(
        self, limit: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> UserPage:
        """One page of users in creation order; pass ``page.next_cursor`` as ``after``.

        Raises:
            UserValidationError: ``limit`` not in 1-1000 or ``after`` not a cursor.
        """
        return await self.repository.list(limit, after=after)

    async def change_password(self, user_id: str, new_password: str) -> None:
        """Hash and store a new password for the user.

        Raises:
            UserValidationError: the password breaks the rules (field ``password``).
            UserNotFoundError: no user has that id.
        """
        password_hash = await self.security.ahash_password(validate_password(new_password))
        await self.repository.set_password_hash(user_id, password_hash)

    async def delete_user(self, user_id: str) -> None:
        """Delete the user.

        Raises:
            UserNotFoundError: no user has that id.
        """
        await self.repository.delete(user_id)
