from celery import shared_task

from accounts.services import invitation_purge_expired_all_orgs


@shared_task
def invitations_purge_task() -> int:
    return invitation_purge_expired_all_orgs()
