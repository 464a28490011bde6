"""Hostile module: a class graph that the host's contract validation walks path by path.

Every class names the two before it as bases: Python builds their MROs at once, but walking
every path from the last class to BaseModule visits about 10**12 of them. The static validation
runs in the host (a thread of the supervisor's), on every load().
"""

from plexisandbox.interfaces import BaseModule, ModulePermissions


class C0(BaseModule):
    """The root of the graph."""

    def __init__(self, name="class_graph_bomb", version="1.0.0"):
        super().__init__(name, version)

    async def initialize(self):
        return True

    def get_metadata(self):
        return {
            "name": self.name,
            "version": self.version,
            "description": "class graph",
            "author": "plexisandbox tests",
        }

    def get_required_permissions(self):
        return ModulePermissions()

    def attempt(self):
        return len(type(self).__mro__)


class C1(C0):
    """Second root."""


class C2(C1, C0):
    """Level 2."""


class C3(C2, C1):
    """Level 3."""


class C4(C3, C2):
    """Level 4."""


class C5(C4, C3):
    """Level 5."""


class C6(C5, C4):
    """Level 6."""


class C7(C6, C5):
    """Level 7."""


class C8(C7, C6):
    """Level 8."""


class C9(C8, C7):
    """Level 9."""


class C10(C9, C8):
    """Level 10."""


class C11(C10, C9):
    """Level 11."""


class C12(C11, C10):
    """Level 12."""


class C13(C12, C11):
    """Level 13."""


class C14(C13, C12):
    """Level 14."""


class C15(C14, C13):
    """Level 15."""


class C16(C15, C14):
    """Level 16."""


class C17(C16, C15):
    """Level 17."""


class C18(C17, C16):
    """Level 18."""


class C19(C18, C17):
    """Level 19."""


class C20(C19, C18):
    """Level 20."""


class C21(C20, C19):
    """Level 21."""


class C22(C21, C20):
    """Level 22."""


class C23(C22, C21):
    """Level 23."""


class C24(C23, C22):
    """Level 24."""


class C25(C24, C23):
    """Level 25."""


class C26(C25, C24):
    """Level 26."""


class C27(C26, C25):
    """Level 27."""


class C28(C27, C26):
    """Level 28."""


class C29(C28, C27):
    """Level 29."""


class C30(C29, C28):
    """Level 30."""


class C31(C30, C29):
    """Level 31."""


class C32(C31, C30):
    """Level 32."""


class C33(C32, C31):
    """Level 33."""


class C34(C33, C32):
    """Level 34."""


class C35(C34, C33):
    """Level 35."""


class C36(C35, C34):
    """Level 36."""


class C37(C36, C35):
    """Level 37."""


class C38(C37, C36):
    """Level 38."""


class C39(C38, C37):
    """Level 39."""


class C40(C39, C38):
    """Level 40."""


class C41(C40, C39):
    """Level 41."""


class C42(C41, C40):
    """Level 42."""


class C43(C42, C41):
    """Level 43."""


class C44(C43, C42):
    """Level 44."""


class C45(C44, C43):
    """Level 45."""


class C46(C45, C44):
    """Level 46."""


class C47(C46, C45):
    """Level 47."""


class C48(C47, C46):
    """Level 48."""


class C49(C48, C47):
    """Level 49."""


class C50(C49, C48):
    """Level 50."""


class C51(C50, C49):
    """Level 51."""


class C52(C51, C50):
    """Level 52."""


class C53(C52, C51):
    """Level 53."""


class C54(C53, C52):
    """Level 54."""


class C55(C54, C53):
    """Level 55."""


class C56(C55, C54):
    """Level 56."""


class C57(C56, C55):
    """Level 57."""


class C58(C57, C56):
    """Level 58."""


class C59(C58, C57):
    """Level 59."""
