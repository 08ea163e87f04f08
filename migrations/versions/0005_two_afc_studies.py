"""2-AFC studies: a study's task and reference kinds, 2-AFC trials and answers

Studies gain `task` (existing rows `rating`), `reference_kinds` (2afc only) and a nullable
fitted machine α. Trials gain the reference kind, the query pair and which position holds the
max query; 2-AFC catch trials name a direction as well as their catch item, and 2-AFC practice
trials name no item. Ratings gain `choice` and `correct`, and `interpretable` may be empty (a
2-AFC answer). Directions gain `activation_sd`, the unit of a query pair's gap.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_ITEM_RULE = (
    "(kind = 'stimulus' AND stimulus_id IS NOT NULL AND catch_item_id IS NULL)"
    " OR (kind = 'catch' AND catch_item_id IS NOT NULL AND stimulus_id IS NULL)"
    " OR (kind = 'practice' AND (stimulus_id IS NULL) <> (catch_item_id IS NULL))"
)
NEW_ITEM_RULE = (
    "(kind = 'stimulus' AND stimulus_id IS NOT NULL AND catch_item_id IS NULL)"
    " OR (kind = 'catch' AND catch_item_id IS NOT NULL AND (stimulus_id IS NULL OR reference IS NOT NULL))"
    " OR (kind = 'practice' AND ((stimulus_id IS NULL) <> (catch_item_id IS NULL)"
    " OR (stimulus_id IS NULL AND catch_item_id IS NULL AND reference IS NOT NULL)))"
)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('directions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activation_sd', sa.Float(), nullable=True))

    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task', sa.String(length=10), server_default='rating', nullable=False))
        batch_op.add_column(sa.Column('reference_kinds', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('machine_alpha', sa.Float(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_studies_task'), "task IN ('rating', '2afc')")
        batch_op.create_check_constraint(op.f('ck_studies_reference_kinds_for_2afc'),
                                         "(task = '2afc') = (reference_kinds IS NOT NULL)")

    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reference', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('query_task', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_position', sa.Integer(), nullable=True))
        batch_op.drop_constraint(op.f('ck_trials_item_matches_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_trials_item_matches_kind'), NEW_ITEM_RULE)
        batch_op.create_check_constraint(op.f('ck_trials_reference'),
                                         "reference IN ('synthetic', 'natural', 'none')")
        batch_op.create_check_constraint(
            op.f('ck_trials_afc_fields'),
            "(reference IS NULL) = (max_position IS NULL) AND (reference IS NULL) = (query_task IS NULL)")
        batch_op.create_check_constraint(op.f('ck_trials_max_position'), 'max_position BETWEEN 0 AND 1')
        batch_op.create_check_constraint(op.f('ck_trials_query_task'), 'query_task >= 0')

    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('choice', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('correct', sa.Boolean(), nullable=True))
        batch_op.alter_column('interpretable', existing_type=sa.Boolean(), nullable=True)
        batch_op.create_check_constraint(op.f('ck_ratings_one_answer'),
                                         '(interpretable IS NULL) <> (choice IS NULL)')
        batch_op.create_check_constraint(op.f('ck_ratings_choice'), 'choice BETWEEN 0 AND 1')
        batch_op.create_check_constraint(op.f('ck_ratings_correct_with_choice'),
                                         '(choice IS NULL) = (correct IS NULL)')
        batch_op.create_check_constraint(op.f('ck_ratings_choice_confidence'),
                                         'choice IS NULL OR confidence <= 3')


def downgrade() -> None:
    """Downgrade schema (refused by the database while 2-AFC answers or trials exist)."""
    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ratings_choice_confidence'), type_='check')
        batch_op.drop_constraint(op.f('ck_ratings_correct_with_choice'), type_='check')
        batch_op.drop_constraint(op.f('ck_ratings_choice'), type_='check')
        batch_op.drop_constraint(op.f('ck_ratings_one_answer'), type_='check')
        batch_op.alter_column('interpretable', existing_type=sa.Boolean(), nullable=False)
        batch_op.drop_column('correct')
        batch_op.drop_column('choice')

    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_trials_query_task'), type_='check')
        batch_op.drop_constraint(op.f('ck_trials_max_position'), type_='check')
        batch_op.drop_constraint(op.f('ck_trials_afc_fields'), type_='check')
        batch_op.drop_constraint(op.f('ck_trials_reference'), type_='check')
        batch_op.drop_constraint(op.f('ck_trials_item_matches_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_trials_item_matches_kind'), OLD_ITEM_RULE)
        batch_op.drop_column('max_position')
        batch_op.drop_column('query_task')
        batch_op.drop_column('reference')

    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_studies_reference_kinds_for_2afc'), type_='check')
        batch_op.drop_constraint(op.f('ck_studies_task'), type_='check')
        batch_op.drop_column('machine_alpha')
        batch_op.drop_column('reference_kinds')
        batch_op.drop_column('task')

    with op.batch_alter_table('directions', schema=None) as batch_op:
        batch_op.drop_column('activation_sd')
