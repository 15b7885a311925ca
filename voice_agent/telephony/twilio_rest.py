"""Call control through Twilio's REST API: transfer a live call to a human, hang up.

Twilio's published contract: ``POST {base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``
with HTTP basic auth (account SID, auth token) and form fields ``Twiml`` (new instructions for the
live call) or ``Status=completed`` (hang up). The TwiML is built with the twilio library.
"""

from __future__ import annotations

import httpx
from loguru import logger
from twilio.twiml.voice_response import VoiceResponse

from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.settings import Settings


class TwilioCallControlError(VoiceAgentError, RuntimeError):
    code = ErrorCode.TWILIO_REST_FAILED


class TwilioCallControl:
    def __init__(self, settings: Settings, call_sid: str) -> None:
        sid, token = settings.twilio_account_sid, settings.twilio_auth_token
        if not settings.twilio_configured or sid is None or token is None:
            raise TwilioCallControlError("Twilio credentials are not configured")
        self._sid: str = sid
        self._token: str = token.get_secret_value()
        self._base = settings.twilio_api_base_url.rstrip("/")
        self._transfer_number = settings.twilio_transfer_number
        self.call_sid = call_sid

    @property
    def can_transfer(self) -> bool:
        return bool(self._transfer_number)

    def _url(self) -> str:
        return f"{self._base}/2010-04-01/Accounts/{self._sid}/Calls/{self.call_sid}.json"

    async def _update(self, form: dict[str, str]) -> None:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(self._url(), data=form, auth=(self._sid, self._token))
        except httpx.HTTPError as e:
            raise TwilioCallControlError(f"Twilio REST unreachable: {e}") from e
        if response.status_code >= 300:
            raise TwilioCallControlError(
                f"Twilio REST {response.status_code} for call {self.call_sid}: "
                f"{response.text[:200]}"
            )
        logger.info(f"twilio call {self.call_sid} updated: {sorted(form)}")

    async def transfer(self) -> None:
        """Replace the live call's instructions with a <Dial> to the human helpdesk."""
        if not self._transfer_number:
            raise TwilioCallControlError("no transfer number configured")
        twiml = VoiceResponse()
        twiml.dial(self._transfer_number)
        await self._update({"Twiml": str(twiml)})

    async def hang_up(self) -> None:
        await self._update({"Status": "completed"})
