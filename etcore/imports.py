"""Import the user's own modules (a module that registers timm models, say) before anything is built.

`tools/pretrain.py --import MODULE` and the fine-tuning configs' `custom_imports` (mmengine's convention,
also after `--cfg-options`) both come here, so a module that cannot be found is one `error:` line naming it.
An exception raised *inside* the user's module is left as its traceback: that is a bug in their code, and
the traceback is what they need to fix it.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from etcore.errors import UserInputError


def import_user_modules(names: Sequence[str], flag: str = "--import") -> list[str]:
    """Import every module in `names` (dotted names); returns them. A missing module is a `UserInputError`."""
    imported = []
    for name in names:
        if not isinstance(name, str) or not name.strip() or name.endswith(".py") or "/" in name:
            raise UserInputError(
                f"{flag} {name!r} is not a module name: give a dotted name such as my_project.models "
                "(the folder holding my_project on PYTHONPATH, or the package installed)"
            )
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            missing = err.name or name
            if name == missing or name.startswith(f"{missing}."):
                where = f"no module named {missing!r}"
                fix = "check the name, and that its folder is on PYTHONPATH (or the package is installed)"
            else:
                where = f"it imports {missing!r}, which is not installed"
                fix = f"install {missing.split('.')[0]} in this environment"
            raise UserInputError(f"{flag} {name}: {where}: {fix}") from None
        imported.append(name)
    return imported
