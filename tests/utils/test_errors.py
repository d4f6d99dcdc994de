"""The errors a user can fix: shown as one line by the CLI wrapper."""

from src.utils.cli import is_user_error
from src.utils.errors import NonFiniteLossError, UserError


def test_a_non_finite_loss_is_a_user_error_and_a_floating_point_error():
    error = NonFiniteLossError("the training loss became nan at global step 3")
    assert isinstance(error, UserError) and isinstance(error, FloatingPointError)
    assert is_user_error(error) and not is_user_error(ValueError("a bug"))
