"""Azure OpenAI fine-tuning from a notebook: the real service, or the course's local emulator.

The same notebook code talks to either one. :func:`make_client` reads the environment:

- ``AZURE_OPENAI_ENDPOINT`` and ``AZURE_OPENAI_API_KEY`` both set → the real
  :class:`openai.AzureOpenAI` (api version ``AZURE_OPENAI_API_VERSION``, default
  :data:`DEFAULT_API_VERSION`). Any server that speaks the Azure OpenAI API answers, the
  course's emulator started with ``python -m helpers emulator serve`` included;
- neither set → a local, in-process emulator (``helpers.emulator``): no network, no
  subscription, a small model really fine-tuned on this machine;
- only one of them set → :class:`AzureSetupError` (a half-configured environment is a mistake
  worth hearing about, not a reason to fall back silently).

The deployment step uses Azure's *management* API (a different host and a different
credential from the data-plane key). It reads ``AZURE_SUBSCRIPTION_ID``,
``AZURE_RESOURCE_GROUP``, ``AZURE_OPENAI_RESOURCE`` (default: the first label of the endpoint's
host name), ``TEMP_AUTH_TOKEN`` (``az account get-access-token``) and
``AZURE_MANAGEMENT_ENDPOINT`` (default ``https://management.azure.com``). The fine-tuned
deployment's name is ``AZURE_OPENAI_FT_DEPLOYMENT`` (default ``gpt-4o-ft``) and the base model's
deployment, used for comparisons, ``AZURE_OPENAI_BASE_DEPLOYMENT`` (default ``gpt-4o``);
``AZURE_OPENAI_POLL_INTERVAL`` sets the seconds between status polls (10 for Azure, 1 for a
server on this machine). The base model to fine-tune comes from one place,
:func:`choose_base_model`: ``AZURE_OPENAI_FT_MODEL``, else (on Azure) the first fine-tunable,
non-retired model the resource lists, else the emulator's versioned gpt-4o. Against
the in-process emulator the management calls go through the emulator's own test client and the
token is the emulator's key.

Modules, one per concept (everything is re-exported here: ``from helpers import azure``, then
``azure.make_client``, ``azure.wait_for_job`` ...):

- ``backend``: :class:`Backend`, :class:`Management`, :func:`make_client`,
  :class:`AzureSetupError` and the defaults (api-versions, deployment names);
- ``models``: :func:`choose_base_model`, :class:`BaseModelChoice`, :data:`EMULATOR_FT_MODEL`;
- ``jobs``: files and jobs (:func:`upload_file`, :func:`wait_for_files`, :func:`create_job`,
  :func:`wait_for_job`, :func:`job_events`, :func:`list_checkpoints`, :func:`read_results`,
  :func:`plot_loss`, :func:`delete_job`, :class:`FineTuningJobError`);
- ``deployments``: the management calls (:func:`deployment_request`, :func:`send`,
  :func:`deploy`, :func:`get_deployment`, :func:`delete_deployment`, :class:`DeploymentError`);
- ``chat``: :func:`chat`, :func:`compare_answers`, :data:`LAB_MESSAGES`;
- ``cleanup``: :func:`clean_up`.

Every function returns a value for the notebook to show; none prints.
"""

from .backend import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_DEPLOYMENT,
    DEFAULT_FT_DEPLOYMENT,
    DEFAULT_MANAGEMENT_ENDPOINT,
    EMULATOR_API_KEY,
    MANAGEMENT_API_VERSION,
    AzureSetupError,
    Backend,
    Management,
    make_client,
)
from .chat import LAB_MESSAGES, chat, compare_answers
from .cleanup import clean_up
from .deployments import (
    DeploymentError,
    DeploymentRequest,
    delete_deployment,
    deploy,
    deployment_request,
    get_deployment,
    send,
)
from .jobs import (
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    FineTuningJobError,
    create_job,
    delete_job,
    job_events,
    list_checkpoints,
    plot_loss,
    read_results,
    upload_file,
    wait_for_files,
    wait_for_job,
)
from .models import EMULATOR_FT_MODEL, BaseModelChoice, choose_base_model

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_DEPLOYMENT",
    "DEFAULT_FT_DEPLOYMENT",
    "DEFAULT_MANAGEMENT_ENDPOINT",
    "EMULATOR_API_KEY",
    "EMULATOR_FT_MODEL",
    "LAB_MESSAGES",
    "MANAGEMENT_API_VERSION",
    "TERMINAL_STATUSES",
    "WAITING_STATUSES",
    "AzureSetupError",
    "Backend",
    "BaseModelChoice",
    "DeploymentError",
    "DeploymentRequest",
    "FineTuningJobError",
    "Management",
    "chat",
    "choose_base_model",
    "clean_up",
    "compare_answers",
    "create_job",
    "delete_deployment",
    "delete_job",
    "deploy",
    "deployment_request",
    "get_deployment",
    "job_events",
    "list_checkpoints",
    "make_client",
    "plot_loss",
    "read_results",
    "send",
    "upload_file",
    "wait_for_files",
    "wait_for_job",
]
